//! MIDI bytes to typed messages and back (pure, never panics on malformed input).
//!
//! [`Parser`] turns one driver message ([`crate::midi::source::RawMidi`]'s bytes) into a
//! [`MidiMessage`] or a [`Malformed`] reason. It keeps the running status of its port, so a
//! message that starts with a data byte reuses the last channel status, as MIDI 1.0 allows.
//! Everything outside the handful of messages the engine needs (notes, CC, clock, transport,
//! Song Position) parses to [`MidiMessage::Ignored`] so that it can be counted, never rejected.

/// A parsed message. Channels are 0-based (0..=15), as on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MidiMessage {
    /// Key pressed (velocity 1..=127).
    NoteOn {
        /// Channel 0..=15.
        channel: u8,
        /// Key number.
        key: u8,
        /// Velocity 1..=127.
        velocity: u8,
    },
    /// Key released; a note-on with velocity 0 parses to this (release velocity 0).
    NoteOff {
        /// Channel 0..=15.
        channel: u8,
        /// Key number.
        key: u8,
        /// Release velocity.
        velocity: u8,
    },
    /// A control change (CC64 is the sustain pedal).
    ControlChange {
        /// Channel 0..=15.
        channel: u8,
        /// Controller number.
        controller: u8,
        /// Value 0..=127.
        value: u8,
    },
    /// Another channel message (program change, aftertouch, pitch bend), well formed but unused.
    OtherChannel {
        /// Its status byte.
        status: u8,
    },
    /// Timing clock 0xF8: one pulse at 24 PPQN.
    Clock,
    /// Start 0xFA: play from the beginning.
    Start,
    /// Continue 0xFB: play from the stored position.
    Continue,
    /// Stop 0xFC: stop, keep the position.
    Stop,
    /// Song Position Pointer 0xF2, in sixteenth notes (6 pulses each).
    SongPosition(u16),
    /// A system-exclusive message (or its end byte 0xF7); never used, counted.
    SysEx,
    /// A well-formed system message the engine does not use (active sensing, MTC, reset...).
    Ignored {
        /// Its status byte.
        status: u8,
    },
}

/// Why bytes are not a MIDI message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Malformed {
    /// No bytes at all.
    Empty,
    /// A data byte with no running status to apply it to.
    DataWithoutStatus,
    /// A byte > 0x7F where a data byte belongs.
    DataByteOutOfRange,
    /// Fewer data bytes than the status needs.
    Truncated,
    /// More bytes than the status needs (two messages glued, or a driver fault).
    TrailingBytes,
}

/// Number of data bytes after `status`, or `None` for SysEx (variable length).
fn data_len(status: u8) -> Option<usize> {
    Some(match status & 0xF0 {
        0x80 | 0x90 | 0xA0 | 0xB0 | 0xE0 => 2,
        0xC0 | 0xD0 => 1,
        _ => match status {
            0xF0 => return None,
            0xF1 | 0xF3 => 1,
            0xF2 => 2,
            _ => 0,
        },
    })
}

/// A per-port parser; holds the running status (the last channel status byte seen).
#[derive(Clone, Copy, Debug, Default)]
pub struct Parser {
    running: Option<u8>,
}

impl Parser {
    /// A parser with no running status.
    pub const fn new() -> Self {
        Self { running: None }
    }

    /// Parses one driver message. `truncated` says the driver had more bytes than given
    /// (only SysEx is that long; anything else truncated is [`Malformed::TrailingBytes`]).
    pub fn parse(&mut self, bytes: &[u8], truncated: bool) -> Result<MidiMessage, Malformed> {
        let (&first, rest) = bytes.split_first().ok_or(Malformed::Empty)?;
        let (status, data) = if first < 0x80 {
            (self.running.ok_or(Malformed::DataWithoutStatus)?, bytes)
        } else {
            (first, rest)
        };
        // Real-time bytes (0xF8..) never touch the running status; system common (0xF0..0xF7)
        // cancels it (MIDI 1.0 spec, "Running Status").
        if status < 0xF0 {
            self.running = Some(status);
        } else if status < 0xF8 {
            self.running = None;
        }
        let Some(need) = data_len(status) else {
            return Ok(MidiMessage::SysEx);
        };
        if status == 0xF7 {
            return Ok(MidiMessage::SysEx);
        }
        if data.len() < need {
            return Err(if data.iter().any(|&b| b > 0x7F) {
                Malformed::DataByteOutOfRange
            } else {
                Malformed::Truncated
            });
        }
        if data[..need].iter().any(|&b| b > 0x7F) {
            return Err(Malformed::DataByteOutOfRange);
        }
        if data.len() > need || truncated {
            return Err(Malformed::TrailingBytes);
        }
        let channel = status & 0x0F;
        let d0 = data.first().copied().unwrap_or(0);
        let d1 = data.get(1).copied().unwrap_or(0);
        Ok(match status & 0xF0 {
            0x80 => MidiMessage::NoteOff {
                channel,
                key: d0,
                velocity: d1,
            },
            0x90 if d1 == 0 => MidiMessage::NoteOff {
                channel,
                key: d0,
                velocity: 0,
            },
            0x90 => MidiMessage::NoteOn {
                channel,
                key: d0,
                velocity: d1,
            },
            0xB0 => MidiMessage::ControlChange {
                channel,
                controller: d0,
                value: d1,
            },
            0xA0 | 0xC0 | 0xD0 | 0xE0 => MidiMessage::OtherChannel { status },
            _ => match status {
                0xF8 => MidiMessage::Clock,
                0xFA => MidiMessage::Start,
                0xFB => MidiMessage::Continue,
                0xFC => MidiMessage::Stop,
                0xF2 => MidiMessage::SongPosition(u16::from(d0) | (u16::from(d1) << 7)),
                _ => MidiMessage::Ignored { status },
            },
        })
    }
}

impl MidiMessage {
    /// Whether this is a real-time or transport message (clock, Start/Stop/Continue, SPP).
    pub fn is_transport(&self) -> bool {
        matches!(
            self,
            Self::Clock | Self::Start | Self::Continue | Self::Stop | Self::SongPosition(_)
        )
    }

    /// The full-status bytes of a note or CC message (running status expanded), for thru and
    /// logs; `None` for everything else.
    pub fn encode(&self) -> Option<([u8; 3], u8)> {
        match *self {
            Self::NoteOn {
                channel,
                key,
                velocity,
            } => Some(([0x90 | (channel & 0x0F), key & 0x7F, velocity & 0x7F], 3)),
            Self::NoteOff {
                channel,
                key,
                velocity,
            } => Some(([0x80 | (channel & 0x0F), key & 0x7F, velocity & 0x7F], 3)),
            Self::ControlChange {
                channel,
                controller,
                value,
            } => Some((
                [0xB0 | (channel & 0x0F), controller & 0x7F, value & 0x7F],
                3,
            )),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn parse(bytes: &[u8]) -> Result<MidiMessage, Malformed> {
        Parser::new().parse(bytes, false)
    }

    #[test]
    fn note_on_with_velocity_zero_is_a_note_off() {
        assert_eq!(
            parse(&[0x93, 60, 0]),
            Ok(MidiMessage::NoteOff {
                channel: 3,
                key: 60,
                velocity: 0
            })
        );
    }

    #[test]
    fn transport_messages_parse() {
        assert_eq!(parse(&[0xF8]), Ok(MidiMessage::Clock));
        assert_eq!(parse(&[0xFA]), Ok(MidiMessage::Start));
        assert_eq!(parse(&[0xFB]), Ok(MidiMessage::Continue));
        assert_eq!(parse(&[0xFC]), Ok(MidiMessage::Stop));
        // 0x10 + 0x02 << 7 = 272 sixteenths.
        assert_eq!(
            parse(&[0xF2, 0x10, 0x02]),
            Ok(MidiMessage::SongPosition(272))
        );
    }

    #[test]
    fn running_status_reuses_the_last_channel_status() {
        let mut p = Parser::new();
        p.parse(&[0x91, 60, 100], false).unwrap();
        // A clock between does not cancel running status.
        assert_eq!(p.parse(&[0xF8], false), Ok(MidiMessage::Clock));
        assert_eq!(
            p.parse(&[62, 90], false),
            Ok(MidiMessage::NoteOn {
                channel: 1,
                key: 62,
                velocity: 90
            })
        );
        // System common cancels it.
        p.parse(&[0xF2, 0, 0], false).unwrap();
        assert_eq!(p.parse(&[62, 90], false), Err(Malformed::DataWithoutStatus));
    }

    #[test]
    fn malformed_messages_are_classified() {
        assert_eq!(parse(&[]), Err(Malformed::Empty));
        assert_eq!(parse(&[60, 100]), Err(Malformed::DataWithoutStatus));
        assert_eq!(parse(&[0x90, 60]), Err(Malformed::Truncated));
        assert_eq!(parse(&[0x90, 0xF8, 1]), Err(Malformed::DataByteOutOfRange));
        assert_eq!(parse(&[0x90, 0x80]), Err(Malformed::DataByteOutOfRange));
        assert_eq!(parse(&[0xF8, 0xF8]), Err(Malformed::TrailingBytes));
        assert_eq!(
            Parser::new().parse(&[0x90, 60, 1], true),
            Err(Malformed::TrailingBytes)
        );
    }

    #[test]
    fn sysex_is_recognised_even_when_truncated() {
        assert_eq!(
            Parser::new().parse(&[0xF0, 0x7E, 0x7F], true),
            Ok(MidiMessage::SysEx)
        );
        assert_eq!(parse(&[0xF7]), Ok(MidiMessage::SysEx));
    }

    #[test]
    fn encode_round_trips_notes_and_cc() {
        for bytes in [[0x95u8, 61, 99], [0x82, 10, 0], [0xB0, 64, 127]] {
            let m = parse(&bytes).unwrap();
            assert_eq!(m.encode(), Some((bytes, 3)));
        }
    }

    proptest! {
        #[test]
        fn arbitrary_byte_streams_never_panic(
            msgs in prop::collection::vec((prop::collection::vec(any::<u8>(), 0..5), any::<bool>()), 0..64)
        ) {
            let mut p = Parser::new();
            for (bytes, truncated) in msgs {
                let n = bytes.len().min(3);
                if let Ok(m) = p.parse(&bytes[..n], truncated || bytes.len() > 3) {
                    if let Some((b, len)) = m.encode() {
                        prop_assert_eq!(len, 3);
                        prop_assert!(b[1] < 0x80 && b[2] < 0x80);
                    }
                }
            }
        }
    }
}
