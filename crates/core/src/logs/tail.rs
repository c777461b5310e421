//! Reading the last lines of a file without reading all of it.

use super::*;

/// The last `n` lines of a file, reading backwards from the end in blocks (never the whole file).
pub fn tail_lines(path: &Path, n: usize) -> std::io::Result<Vec<String>> {
    let mut f = File::open(path)?;
    let len = f.seek(SeekFrom::End(0))?;
    if n == 0 || len == 0 {
        return Ok(vec![]);
    }
    const BLOCK: u64 = 64 * 1024;
    let mut pos = len;
    let mut blocks: Vec<Vec<u8>> = Vec::new();
    let mut newlines = 0usize;
    let mut trailing = None;
    while pos > 0 {
        let start = pos.saturating_sub(BLOCK);
        let mut chunk = vec![0u8; (pos - start) as usize];
        f.seek(SeekFrom::Start(start))?;
        f.read_exact(&mut chunk)?;
        if trailing.is_none() {
            trailing = Some(chunk.last() == Some(&b'\n'));
        }
        newlines += chunk.iter().filter(|&&b| b == b'\n').count();
        blocks.push(chunk);
        pos = start;
        // n whole lines: n newlines before them, not counting the file's final newline.
        if newlines - usize::from(trailing == Some(true)) >= n {
            break;
        }
    }
    let mut buf = Vec::with_capacity(blocks.iter().map(|b| b.len()).sum());
    for b in blocks.iter().rev() {
        buf.extend_from_slice(b);
    }
    let text = String::from_utf8_lossy(&buf);
    let mut lines: Vec<String> = text.lines().map(|s| s.to_string()).collect();
    let keep = lines.len().saturating_sub(n);
    Ok(lines.split_off(keep))
}
