//! Token use and cost per transcript, read incrementally across polls.
//!
//! Transcripts only grow while a session lives, and `list()` runs every poll, so each file's
//! read offset, running total and unfinished last line are cached: a poll reads only the bytes
//! appended since the previous one. A file that shrank, was replaced (new inode) or whose first
//! bytes changed is read again from the start.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use super::Usage;
use super::transcript::line_usage;

/// How many leading bytes are remembered to notice a file rewritten in place.
const PREFIX_LEN: usize = 256;
const CHUNK_LEN: usize = 64 * 1024;

/// Per-file incremental usage totals.
#[derive(Debug, Default)]
pub(crate) struct UsageCache {
    files: HashMap<PathBuf, FileState>,
}

#[derive(Debug, Default)]
struct FileState {
    /// Device and inode, to notice an atomic replace (rename over the old file).
    identity: Option<(u64, u64)>,
    /// Bytes consumed so far, including `partial`.
    offset: u64,
    /// The file's first bytes as last read.
    prefix: Vec<u8>,
    /// The bytes after the last newline: a line still being written.
    partial: Vec<u8>,
    usage: Usage,
}

impl UsageCache {
    /// The usage summed over the transcript at `path`, reading only what was appended since
    /// the last call. `None` when the file does not exist (yet). On another I/O error the
    /// last known total is kept, so one unreadable transcript does not fail a poll.
    pub fn usage(&mut self, path: &Path) -> Option<Usage> {
        match self.update(path) {
            Ok(usage) => Some(usage),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                self.files.remove(path);
                None
            }
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot read transcript");
                self.files.get(path).map(|s| s.usage)
            }
        }
    }

    /// Forgets files not in `keep` (sessions that left the store).
    pub fn retain(&mut self, keep: &HashSet<PathBuf>) {
        self.files.retain(|path, _| keep.contains(path));
    }

    /// The read offset of a cached file, for tests.
    #[cfg(test)]
    fn offset(&self, path: &Path) -> Option<u64> {
        self.files.get(path).map(|s| s.offset)
    }

    fn update(&mut self, path: &Path) -> io::Result<Usage> {
        let mut file = File::open(path)?;
        let meta = file.metadata()?;
        let identity = file_identity(&meta);
        let state = self.files.entry(path.to_path_buf()).or_default();
        if !state.still_matches(&mut file, meta.len(), identity)? {
            *state = FileState::default();
        }
        state.identity = identity;
        if meta.len() > state.offset {
            state.read_appended(&mut file)?;
        }
        state.remember_prefix(&mut file)?;
        Ok(state.usage)
    }
}

impl FileState {
    /// Whether `file` is still the file this state was built from, so appending is safe.
    fn still_matches(&self, file: &mut File, len: u64, identity: Option<(u64, u64)>) -> io::Result<bool> {
        if self.offset == 0 {
            return Ok(true);
        }
        if identity != self.identity || len < self.offset {
            return Ok(false);
        }
        let mut head = vec![0; self.prefix.len()];
        file.seek(SeekFrom::Start(0))?;
        file.read_exact(&mut head)?;
        Ok(head == self.prefix)
    }

    /// Reads from `offset` to the end of the file and adds the usage of each completed line.
    fn read_appended(&mut self, file: &mut File) -> io::Result<()> {
        file.seek(SeekFrom::Start(self.offset))?;
        let mut buf = vec![0; CHUNK_LEN];
        loop {
            let n = match file.read(&mut buf) {
                Ok(0) => return Ok(()),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            self.consume(&buf[..n]);
            self.offset += n as u64;
        }
    }

    fn consume(&mut self, mut chunk: &[u8]) {
        while let Some(pos) = chunk.iter().position(|&b| b == b'\n') {
            let (line, rest) = chunk.split_at(pos);
            if self.partial.is_empty() {
                self.add_line(line);
            } else {
                let mut whole = std::mem::take(&mut self.partial);
                whole.extend_from_slice(line);
                self.add_line(&whole);
            }
            chunk = &rest[1..];
        }
        self.partial.extend_from_slice(chunk);
    }

    fn add_line(&mut self, line: &[u8]) {
        if let Some(u) = line_usage(line) {
            // A corrupt or hostile transcript must not overflow or drive totals negative.
            self.usage.tokens = self.usage.tokens.saturating_add(u.tokens.max(0));
            if u.cost.is_finite() && u.cost > 0.0 {
                self.usage.cost += u.cost;
            }
        }
    }

    fn remember_prefix(&mut self, file: &mut File) -> io::Result<()> {
        let want = usize::try_from(self.offset).map_or(PREFIX_LEN, |o| o.min(PREFIX_LEN));
        if self.prefix.len() < want {
            let mut head = vec![0; want];
            file.seek(SeekFrom::Start(0))?;
            file.read_exact(&mut head)?;
            self.prefix = head;
        }
        Ok(())
    }
}

#[cfg(unix)]
fn file_identity(meta: &std::fs::Metadata) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    Some((meta.dev(), meta.ino()))
}

#[cfg(not(unix))]
fn file_identity(_meta: &std::fs::Metadata) -> Option<(u64, u64)> {
    None
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{TempDir, assert_usage, fixture};
    use super::*;
    use std::io::Write;

    const MOCK1: &str = "clawdbot/store/agents/main/sessions/3207e4b5-9db2-4f0f-aa04-c966250a1400.jsonl";
    const MOCK2: &str = "clawdbot/store/agents/main/sessions/456420ca-1cfd-4fe3-9f74-eb1bbb09949b.jsonl";
    /// A message line worth 100 tokens and 0.25 dollars.
    const EXTRA: &str = r#"{"type":"message","message":{"role":"assistant","usage":{"input":90,"output":10,"cacheRead":0,"cacheWrite":0,"totalTokens":100,"cost":{"total":0.25}}}}"#;

    fn append(path: &Path, bytes: &str) {
        let mut f = std::fs::OpenOptions::new().append(true).open(path).unwrap();
        f.write_all(bytes.as_bytes()).unwrap();
    }

    #[test]
    fn fixture_transcripts_sum_by_hand() {
        let mut cache = UsageCache::default();
        // mock-1: five assistant lines of 1290 tokens (1234 + 56) and $0.004542 each.
        assert_usage(cache.usage(&fixture(MOCK1)).unwrap(), 6450, 0.02271);
        // mock-2: one such line.
        assert_usage(cache.usage(&fixture(MOCK2)).unwrap(), 1290, 0.004542);
        let main = "clawdbot/store/agents/main/sessions/11111111-2222-3333-4444-555555555555.jsonl";
        assert_usage(cache.usage(&fixture(main)).unwrap(), 13, 0.0003);
        assert_eq!(cache.usage(&fixture("clawdbot/store/none.jsonl")), None);
    }

    #[test]
    fn appended_lines_are_read_incrementally() {
        let tmp = TempDir::new();
        let path = tmp.path().join("t.jsonl");
        std::fs::copy(fixture(MOCK1), &path).unwrap();
        let len = std::fs::metadata(&path).unwrap().len();
        let mut cache = UsageCache::default();
        assert_usage(cache.usage(&path).unwrap(), 6450, 0.02271);
        assert_eq!(cache.offset(&path), Some(len));

        // Garble an already-read line in place (same inode, same first bytes): a re-parse
        // from the start would lose its 1290 tokens, an incremental read never sees it.
        let mut bytes = std::fs::read(&path).unwrap();
        let at = bytes.len() - 200;
        bytes[at..at + 50].fill(b'#');
        std::fs::OpenOptions::new().write(true).open(&path).unwrap().write_all(&bytes).unwrap();
        append(&path, &format!("{EXTRA}\n"));
        assert_usage(cache.usage(&path).unwrap(), 6550, 0.27271);

        // A line written in two pieces counts once, when its newline arrives.
        let (a, b) = EXTRA.split_at(40);
        append(&path, a);
        assert_usage(cache.usage(&path).unwrap(), 6550, 0.27271);
        append(&path, &format!("{b}\n"));
        assert_usage(cache.usage(&path).unwrap(), 6650, 0.52271);

        // Bad lines are skipped.
        append(&path, "not json\n{\"type\":\"message\"}\n");
        assert_usage(cache.usage(&path).unwrap(), 6650, 0.52271);
        // Nothing new: nothing read.
        let offset = cache.offset(&path);
        assert_usage(cache.usage(&path).unwrap(), 6650, 0.52271);
        assert_eq!(cache.offset(&path), offset);
    }

    #[test]
    fn truncated_or_replaced_files_are_read_again() {
        let tmp = TempDir::new();
        let path = tmp.path().join("t.jsonl");
        std::fs::copy(fixture(MOCK1), &path).unwrap();
        let mut cache = UsageCache::default();
        assert_usage(cache.usage(&path).unwrap(), 6450, 0.02271);

        // Truncated in place to something shorter.
        std::fs::write(&path, format!("{EXTRA}\n")).unwrap();
        assert_usage(cache.usage(&path).unwrap(), 100, 0.25);

        // Replaced by rename with a longer file.
        let other = tmp.path().join("other.jsonl");
        std::fs::copy(fixture(MOCK2), &other).unwrap();
        append(&other, &format!("{EXTRA}\n{EXTRA}\n"));
        std::fs::rename(&other, &path).unwrap();
        assert_usage(cache.usage(&path).unwrap(), 1490, 0.504542);

        // Rewritten in place, longer, with a different beginning.
        let mut text = std::fs::read_to_string(fixture(MOCK1)).unwrap();
        text = text.replacen("3207e4b5", "99999999", 1);
        std::fs::write(&path, &text).unwrap();
        assert_usage(cache.usage(&path).unwrap(), 6450, 0.02271);

        // Deleted: no usage, and the cache forgets it.
        std::fs::remove_file(&path).unwrap();
        assert_eq!(cache.usage(&path), None);
        assert_eq!(cache.offset(&path), None);
    }

    #[test]
    fn retain_forgets_other_files() {
        let mut cache = UsageCache::default();
        cache.usage(&fixture(MOCK1));
        cache.usage(&fixture(MOCK2));
        cache.retain(&HashSet::from([fixture(MOCK2)]));
        assert_eq!(cache.offset(&fixture(MOCK1)), None);
        assert!(cache.offset(&fixture(MOCK2)).is_some());
    }
}
