//! Finding a port by the name the user gave: a case-insensitive substring of the port's name.
//!
//! Pure: takes the current port names, returns an index or an error listing the candidates.

use super::PortError;

/// Which side of a port we use, for error messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// A port we read from (a MIDI source: a keyboard, Ableton's output, a clock master).
    Input,
    /// A port we write to (a MIDI destination: a synth, Ableton's input).
    Output,
}

impl Direction {
    /// "input" or "output".
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Input => "input",
            Direction::Output => "output",
        }
    }
}

/// The index in `names` of the one port whose name contains `query`, ignoring case.
///
/// When several contain it but exactly one equals it (ignoring case), that one wins, so a port
/// called "Bus 1" stays reachable next to "Bus 10". `key` names the config key in errors.
pub fn find_port(
    key: &'static str,
    query: &str,
    direction: Direction,
    names: &[String],
) -> Result<usize, PortError> {
    let q = query.trim().to_lowercase();
    let hits: Vec<usize> = names
        .iter()
        .enumerate()
        .filter(|(_, n)| n.to_lowercase().contains(&q))
        .map(|(i, _)| i)
        .collect();
    match hits.as_slice() {
        [] => Err(PortError::NoMatch {
            key,
            query: query.to_owned(),
            direction: direction.as_str(),
            available: names.to_vec(),
            hint: missing_port_hint(),
        }),
        [one] => Ok(*one),
        several => {
            let exact: Vec<usize> = several
                .iter()
                .copied()
                .filter(|&i| names[i].trim().to_lowercase() == q)
                .collect();
            match exact.as_slice() {
                [one] => Ok(*one),
                _ => Err(PortError::Ambiguous {
                    key,
                    query: query.to_owned(),
                    direction: direction.as_str(),
                    matches: several.iter().map(|&i| names[i].clone()).collect(),
                }),
            }
        }
    }
}

/// Platform advice for a name that matches nothing.
fn missing_port_hint() -> &'static str {
    if cfg!(windows) {
        "; Windows has no virtual ports: create the port in loopMIDI first (run `aria-bridge ports` to see names)"
    } else {
        "; run `aria-bridge ports` to see names"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn substring_matches_ignoring_case() {
        let n = names(&["Midi Through:Port-0 14:0", "Arturia KeyStep 37:0 24:0"]);
        assert_eq!(
            find_port("midi.input_port", "keystep", Direction::Input, &n).unwrap(),
            1
        );
        assert_eq!(
            find_port("midi.input_port", "  THROUGH ", Direction::Input, &n).unwrap(),
            0
        );
    }

    #[test]
    fn no_match_error_names_key_query_and_every_port() {
        let n = names(&["loopMIDI Port", "IAC Driver Bus 1"]);
        let e = find_port("midi.output_port", "ableton", Direction::Output, &n).unwrap_err();
        let msg = e.to_string();
        assert!(matches!(e, PortError::NoMatch { .. }));
        assert!(msg.contains("`midi.output_port` = \"ableton\""), "{msg}");
        assert!(msg.contains("output ports"), "{msg}");
        assert!(
            msg.contains("\"loopMIDI Port\", \"IAC Driver Bus 1\""),
            "{msg}"
        );
        assert!(msg.contains("aria-bridge ports"), "{msg}");
    }

    #[test]
    fn no_match_with_no_ports_says_none() {
        let e = find_port("midi.clock_port", "x", Direction::Input, &[]).unwrap_err();
        assert!(e.to_string().contains("(none)"), "{e}");
    }

    #[test]
    fn several_matches_error_lists_only_the_matches() {
        let n = names(&["IAC Bus 1", "IAC Bus 2", "Keystep"]);
        let e = find_port("midi.input_port", "iac", Direction::Input, &n).unwrap_err();
        let msg = e.to_string();
        assert!(matches!(e, PortError::Ambiguous { .. }));
        assert!(msg.contains("matches 2 MIDI input ports"), "{msg}");
        assert!(msg.contains("\"IAC Bus 1\", \"IAC Bus 2\""), "{msg}");
        assert!(!msg.contains("Keystep"), "{msg}");
    }

    #[test]
    fn exact_name_wins_among_several_substring_matches() {
        let n = names(&["Bus 10", "bus 1", "Bus 11"]);
        assert_eq!(
            find_port("midi.input_port", "BUS 1", Direction::Input, &n).unwrap(),
            1
        );
    }

    #[test]
    fn duplicate_exact_names_stay_ambiguous() {
        let n = names(&["Bus 1", "Bus 1"]);
        let e = find_port("midi.input_port", "bus 1", Direction::Input, &n).unwrap_err();
        assert!(matches!(e, PortError::Ambiguous { .. }));
    }
}
