//! What reached the fake SMSC: scripts/services/kannel.sh keeps a `fakesmsc` client connected to
//! Kannel's MT side that logs every message it gets ("Got message N: <from to type data>").
//! The bench reads that log as it grows and counts, for one sender number, each recipient's
//! messages and when the first arrived.

use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::time::Instant;

/// The MT log, read from where it ended when we opened it.
pub struct MtLog {
    path: PathBuf,
    offset: u64,
    partial: String,
}

impl MtLog {
    pub fn from_end(path: impl Into<PathBuf>) -> std::io::Result<MtLog> {
        let path = path.into();
        let offset = std::fs::metadata(&path)?.len();
        Ok(MtLog { path, offset, partial: String::new() })
    }

    /// The complete lines written since the last call.
    pub fn new_lines(&mut self) -> std::io::Result<Vec<String>> {
        let mut file = std::fs::File::open(&self.path)?;
        file.seek(SeekFrom::Start(self.offset))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        self.offset += bytes.len() as u64;
        self.partial.push_str(&String::from_utf8_lossy(&bytes));
        let Some(end) = self.partial.rfind('\n') else { return Ok(Vec::new()) };
        let rest = self.partial.split_off(end + 1);
        let lines = std::mem::replace(&mut self.partial, rest);
        Ok(lines.lines().map(str::to_string).collect())
    }
}

/// Sender and recipient of one logged message.
pub fn parse(line: &str) -> Option<(&str, &str)> {
    let (_, rest) = line.split_once("Got message ")?.1.split_once(": <")?;
    let mut parts = rest.splitn(3, ' ');
    Some((parts.next()?, parts.next()?))
}

fn digits(number: &str) -> String {
    number.chars().filter(char::is_ascii_digit).collect()
}

/// Messages from one sender number, by recipient (digits only).
pub struct Tally {
    from: String,
    seen: HashMap<String, (usize, Instant)>,
    pub last_arrival: Option<Instant>,
}

impl Tally {
    pub fn new(from: &str) -> Tally {
        Tally { from: from.to_string(), seen: HashMap::new(), last_arrival: None }
    }

    /// Count the lines that are our sender's messages, as arrived at `at`.
    pub fn add(&mut self, lines: &[String], at: Instant) {
        for (from, to) in lines.iter().filter_map(|l| parse(l)) {
            if from != self.from {
                continue;
            }
            let entry = self.seen.entry(digits(to)).or_insert((0, at));
            entry.0 += 1;
            self.last_arrival = Some(at);
        }
    }

    /// Messages from our sender, duplicates included.
    pub fn messages(&self) -> usize {
        self.seen.values().map(|(n, _)| n).sum()
    }

    /// When the first message to `number` arrived.
    pub fn first_arrival(&self, number: &str) -> Option<Instant> {
        self.seen.get(&digits(number)).map(|(_, at)| *at)
    }

    /// Of the `expected` recipients (one message each): how many got one, how many messages were
    /// extra (a recipient's second and later), and how many got none.
    pub fn check(&self, expected: &[String]) -> Delivery {
        let mut delivery = Delivery::default();
        for number in expected {
            match self.seen.get(&digits(number)) {
                Some((n, _)) => {
                    delivery.reached += 1;
                    delivery.duplicates += n - 1;
                }
                None => delivery.lost += 1,
            }
        }
        delivery
    }
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Delivery {
    pub reached: usize,
    pub duplicates: usize,
    pub lost: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(n: usize, from: &str, to: &str) -> String {
        format!("2026-12-04 10:00:00 [1] DEBUG: Got message {n}: <{from} {to} text Hi+Sam%2C+it%27s+Jo>")
    }

    #[test]
    fn parses_sender_and_recipient() {
        assert_eq!(parse(&line(3, "600123", "+447700900001")), Some(("600123", "+447700900001")));
        assert_eq!(parse("fakesmsc: connected"), None);
    }

    #[test]
    fn counts_only_our_sender_and_finds_duplicates_and_losses() {
        let mut tally = Tally::new("600123");
        let t0 = Instant::now();
        tally.add(&[line(1, "600123", "+447700900001"), line(2, "999", "+447700900002")], t0);
        tally.add(&[line(3, "600123", "+447700900003"), line(4, "600123", "447700900001")], Instant::now());
        assert_eq!(tally.messages(), 3);
        assert_eq!(tally.first_arrival("+447700900001"), Some(t0));
        let expected: Vec<String> = ["+447700900001", "+447700900002", "+447700900003"].map(String::from).to_vec();
        assert_eq!(tally.check(&expected), Delivery { reached: 2, duplicates: 1, lost: 1 });
    }

    #[test]
    fn reads_only_complete_lines_written_after_opening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mt.log");
        std::fs::write(&path, line(1, "1", "2") + "\n").unwrap();
        let mut log = MtLog::from_end(&path).unwrap();
        assert!(log.new_lines().unwrap().is_empty());
        let mut file = std::fs::OpenOptions::new().append(true).open(&path).unwrap();
        std::io::Write::write_all(&mut file, format!("{}\n{}", line(2, "1", "3"), "Got mess").as_bytes()).unwrap();
        assert_eq!(log.new_lines().unwrap(), vec![line(2, "1", "3")]);
        std::io::Write::write_all(&mut file, b"age 3: <1 4 text x>\n").unwrap();
        assert_eq!(log.new_lines().unwrap(), vec!["Got message 3: <1 4 text x>".to_string()]);
    }
}
