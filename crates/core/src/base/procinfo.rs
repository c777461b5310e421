//! CPU and memory of process trees, from the system's process table through [`super::platform`]
//! (`/proc` on Linux, read directly: no `ps`, no polling of exits; `ps` elsewhere).

use std::collections::HashMap;
use std::time::Instant;

pub use super::platform::{parse_stat, Stat};

/// Clock ticks per second of [`Stat::ticks`] (`CLK_TCK`; 100 where the `ps` fallback's 1/100 s is used).
fn clock_ticks() -> f64 {
    if !cfg!(target_os = "linux") {
        return 100.0;
    }
    match nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK) {
        Ok(Some(v)) if v > 0 => v as f64,
        _ => 100.0,
    }
}

/// Reads one process's stat; None when it does not exist (or cannot be read).
pub fn stat(pid: u32) -> Option<Stat> {
    super::platform::process(pid)
}

/// True when `pid` exists and is not a zombie.
pub fn is_alive(pid: u32) -> bool {
    matches!(stat(pid), Some(s) if s.state != 'Z' && s.state != 'X')
}

/// Every process on the machine (that we can read).
pub fn all() -> Vec<Stat> {
    super::platform::processes()
}

/// CPU (%) and memory (bytes) of one app's process tree.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Usage {
    /// RSS of the root and all its descendants, in bytes.
    pub memory: u64,
    /// CPU of the tree since the previous sample, in % of one core.
    pub cpu: f64,
}

/// Samples process trees, remembering CPU ticks between calls to compute CPU %.
#[derive(Debug, Default)]
pub struct Sampler {
    prev: HashMap<u32, (u64, Instant)>,
}

impl Sampler {
    /// A sampler with no history (the first sample of each tree reports 0% CPU).
    pub fn new() -> Sampler {
        Sampler::default()
    }

    /// Usage of each tree rooted at `roots`. Roots that no longer exist are left out.
    pub fn sample(&mut self, roots: &[u32]) -> HashMap<u32, Usage> {
        let mut out = HashMap::new();
        if roots.is_empty() {
            self.prev.clear();
            return out;
        }
        let procs = all();
        let mut children: HashMap<u32, Vec<usize>> = HashMap::new();
        let mut by_pid: HashMap<u32, usize> = HashMap::new();
        for (i, p) in procs.iter().enumerate() {
            children.entry(p.ppid).or_default().push(i);
            by_pid.insert(p.pid, i);
        }
        let now = Instant::now();
        let hz = clock_ticks();
        for &root in roots {
            let Some(&ri) = by_pid.get(&root) else {
                continue;
            };
            let (mut mem, mut ticks) = (0u64, 0u64);
            let mut stack = vec![ri];
            let mut seen = 0;
            while let Some(i) = stack.pop() {
                seen += 1;
                if seen > 100_000 {
                    break;
                }
                let p = &procs[i];
                mem = mem.saturating_add(p.rss);
                ticks = ticks.saturating_add(p.ticks);
                if let Some(c) = children.get(&p.pid) {
                    stack.extend(c.iter().copied());
                }
            }
            let cpu = match self.prev.get(&root) {
                Some(&(pt, pi)) if ticks >= pt => {
                    let secs = now.duration_since(pi).as_secs_f64();
                    if secs > 0.0 {
                        ((ticks - pt) as f64 / hz) / secs * 100.0
                    } else {
                        0.0
                    }
                }
                _ => 0.0,
            };
            self.prev.insert(root, (ticks, now));
            out.insert(root, Usage { memory: mem, cpu: (cpu * 10.0).round() / 10.0 });
        }
        self.prev.retain(|k, _| roots.contains(k));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_spaces_in_name() {
        let t = "1234 (my (weird) app) S 1 1234 1234 0 -1 4194560 100 0 0 0 7 3 0 0 20 0 1 0 5555 1000000 25 18446744073709551615";
        let s = parse_stat(t, 4096).unwrap();
        assert_eq!(s.pid, 1234);
        assert_eq!(s.ppid, 1);
        assert_eq!(s.state, 'S');
        assert_eq!(s.ticks, 10);
        assert_eq!(s.start_time, 5555);
        assert_eq!(s.rss, 25 * 4096);
        assert!(parse_stat("garbage", 4096).is_none());
    }

    #[test]
    fn samples_own_process() {
        let me = std::process::id();
        assert!(is_alive(me));
        let mut s = Sampler::new();
        let u = s.sample(&[me]);
        assert!(u[&me].memory > 0);
        assert!(s.sample(&[u32::MAX - 1]).is_empty());
    }
}
