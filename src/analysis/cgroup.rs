//! The memory limit the kernel enforces on this process's control group, how much of it is in
//! use, and memory pressure: cgroup v2 (`memory.current`, `memory.max`, `memory.pressure`), or
//! the v1 memory controller (`memory.usage_in_bytes`, `memory.limit_in_bytes`) with the
//! system-wide pressure (`/proc/pressure/memory`). A container's OOM killer acts on these
//! figures, not on RSS: the cgroup's usage includes the page cache and other processes of the
//! group.
//!
//! The group's directory is found once (`/proc/self/cgroup` and `/proc/self/mountinfo`) and
//! its files are read at each memory snapshot: three small reads.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

/// The control group's memory figures (measured).
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq)]
#[non_exhaustive]
pub struct CgroupMemory {
    /// 2 for the unified hierarchy, 1 for the v1 memory controller.
    pub version: u8,
    /// Memory the group uses, bytes (`memory.current`; v1: `memory.usage_in_bytes`).
    pub current_bytes: u64,
    /// The group's hard limit, bytes (`memory.max`; v1: `memory.limit_in_bytes`); `None` if
    /// unlimited.
    pub max_bytes: Option<u64>,
    /// Memory pressure (PSI), if the kernel reports it.
    pub pressure: Option<Pressure>,
}

impl CgroupMemory {
    /// `current / max`, if there is a limit.
    pub fn used_ratio(&self) -> Option<f64> {
        self.max_bytes
            .filter(|&max| max > 0)
            .map(|max| self.current_bytes as f64 / max as f64)
    }
}

/// Memory pressure stall information: the share of wall time in which some (or all) runnable
/// tasks waited for memory, averaged over 10 and 60 seconds, in percent.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq)]
#[non_exhaustive]
pub struct Pressure {
    /// Some tasks stalled, last 10 s.
    pub some_avg10: f64,
    /// Some tasks stalled, last 60 s.
    pub some_avg60: f64,
    /// All non-idle tasks stalled at once, last 10 s.
    pub full_avg10: f64,
    /// All non-idle tasks stalled at once, last 60 s.
    pub full_avg60: f64,
    /// Whether these are the whole system's figures (`/proc/pressure/memory`) rather than the
    /// group's.
    pub system_wide: bool,
}

/// Where the group's files are.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Location {
    version: u8,
    dir: PathBuf,
}

/// This process's memory cgroup now; `None` outside Linux control groups or if the files
/// cannot be read.
pub(crate) fn read() -> Option<CgroupMemory> {
    static LOCATION: OnceLock<Option<Location>> = OnceLock::new();
    let location = LOCATION.get_or_init(|| {
        let cgroup = std::fs::read_to_string("/proc/self/cgroup").ok()?;
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
        locate(&cgroup, &mountinfo, |dir, file| dir.join(file).is_file())
    });
    read_at(location.as_ref()?, Path::new("/proc/pressure/memory"))
}

/// The figures in `location`, with `system_pressure` as the pressure file of a v1 group.
fn read_at(location: &Location, system_pressure: &Path) -> Option<CgroupMemory> {
    let read = |name: &str| std::fs::read_to_string(location.dir.join(name)).ok();
    let (current, max, pressure) = match location.version {
        2 => (
            read("memory.current")?,
            read("memory.max")?,
            read("memory.pressure").and_then(|p| parse_pressure(&p, false)),
        ),
        _ => (
            read("memory.usage_in_bytes")?,
            read("memory.limit_in_bytes")?,
            std::fs::read_to_string(system_pressure)
                .ok()
                .and_then(|p| parse_pressure(&p, true)),
        ),
    };
    Some(CgroupMemory {
        version: location.version,
        current_bytes: current.trim().parse().ok()?,
        max_bytes: parse_limit(&max)?,
        pressure,
    })
}

/// A limit file: `max` (v2) or a value near `i64::MAX` rounded to pages (v1) mean no limit.
/// `None` if it does not parse.
fn parse_limit(text: &str) -> Option<Option<u64>> {
    let text = text.trim();
    if text == "max" {
        return Some(None);
    }
    let value: u64 = text.parse().ok()?;
    // v1 writes "unlimited" as the largest page multiple below 2^63.
    Some((value < 1 << 62).then_some(value))
}

/// A PSI file: `some avg10=0.12 avg60=0.05 avg300=0.01 total=1234` and a `full` line.
fn parse_pressure(text: &str, system_wide: bool) -> Option<Pressure> {
    let mut p = Pressure {
        system_wide,
        ..Pressure::default()
    };
    let mut seen = false;
    for line in text.lines() {
        let mut fields = line.split_whitespace();
        let (avg10, avg60) = match fields.next() {
            Some("some") => (&mut p.some_avg10, &mut p.some_avg60),
            Some("full") => (&mut p.full_avg10, &mut p.full_avg60),
            _ => continue,
        };
        for field in fields {
            match field.split_once('=') {
                Some(("avg10", v)) => *avg10 = v.parse().ok()?,
                Some(("avg60", v)) => *avg60 = v.parse().ok()?,
                _ => {}
            }
        }
        seen = true;
    }
    seen.then_some(p)
}

/// Finds the group's directory from `/proc/self/cgroup` and `/proc/self/mountinfo`: the v2
/// group if its mount has the memory files, else the v1 memory controller's. The process's
/// group path is taken under the mount; inside a container whose mount shows only its own
/// group, the path may not exist there, so the nearest ancestor directory that has the files
/// is used, up to the mount itself. `has(dir, file)` says whether a file exists.
fn locate(cgroup: &str, mountinfo: &str, has: impl Fn(&Path, &str) -> bool) -> Option<Location> {
    for (version, controller, probe) in [
        (2, "", "memory.current"),
        (1, "memory", "memory.usage_in_bytes"),
    ] {
        let Some(group) = cgroup.lines().find_map(|line| {
            let mut parts = line.splitn(3, ':');
            let (_id, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
            let matches = if version == 2 {
                controllers.is_empty()
            } else {
                controllers.split(',').any(|c| c == controller)
            };
            matches.then_some(path)
        }) else {
            continue;
        };
        let Some((root, mount)) = mountinfo.lines().find_map(|line| {
            // `id parent major:minor root mount-point options ... - fstype source super-options`
            let (left, right) = line.split_once(" - ")?;
            let left: Vec<&str> = left.split(' ').collect();
            let right: Vec<&str> = right.split(' ').collect();
            let (root, mount) = (*left.get(3)?, *left.get(4)?);
            let fits = match version {
                2 => right.first() == Some(&"cgroup2"),
                _ => {
                    right.first() == Some(&"cgroup")
                        && right
                            .get(2)
                            .is_some_and(|o| o.split(',').any(|o| o == controller))
                }
            };
            fits.then_some((root, mount))
        }) else {
            continue;
        };
        let inside = group
            .strip_prefix(root)
            .unwrap_or(group)
            .trim_start_matches('/');
        let mut dir = Path::new(mount).join(inside);
        loop {
            if has(&dir, probe) {
                return Some(Location { version, dir });
            }
            if dir == Path::new(mount) || !dir.pop() {
                break;
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const V2_CGROUP: &str = "0::/system.slice/app.service\n";
    const V2_MOUNTS: &str = "\
24 30 0:22 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 cgroup2 rw,nsdelegate
30 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
";
    const HYBRID_CGROUP: &str = "\
9:name=systemd:/
4:memory:/process_api/627a
1:cpu:/
0::/
";
    const HYBRID_MOUNTS: &str = "\
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";

    #[test]
    fn v2_group_under_its_mount() {
        let found = locate(V2_CGROUP, V2_MOUNTS, |dir, file| {
            dir == Path::new("/sys/fs/cgroup/system.slice/app.service") && file == "memory.current"
        });
        assert_eq!(
            found,
            Some(Location {
                version: 2,
                dir: PathBuf::from("/sys/fs/cgroup/system.slice/app.service")
            })
        );
    }

    #[test]
    fn hybrid_falls_back_to_v1_and_to_the_mount_of_a_container() {
        // The unified mount has no memory files; the v1 group path does not exist under its
        // mount (a container sees only its own group, at the mount's root).
        let found = locate(HYBRID_CGROUP, HYBRID_MOUNTS, |dir, file| {
            dir == Path::new("/sys/fs/cgroup/memory") && file == "memory.usage_in_bytes"
        });
        assert_eq!(
            found,
            Some(Location {
                version: 1,
                dir: PathBuf::from("/sys/fs/cgroup/memory")
            })
        );
        assert_eq!(locate(HYBRID_CGROUP, HYBRID_MOUNTS, |_, _| false), None);
        assert_eq!(locate("", "", |_, _| true), None);
    }

    #[test]
    fn mount_root_is_stripped_from_the_group_path() {
        let mounts = "50 1 0:40 /kubepods/pod1 /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n";
        let found = locate("0::/kubepods/pod1/ctr\n", mounts, |dir, _| {
            dir == Path::new("/sys/fs/cgroup/ctr")
        });
        assert_eq!(
            found.map(|l| l.dir),
            Some(PathBuf::from("/sys/fs/cgroup/ctr"))
        );
    }

    #[test]
    fn limits() {
        assert_eq!(parse_limit("max\n"), Some(None));
        assert_eq!(parse_limit("9223372036854771712\n"), Some(None));
        assert_eq!(parse_limit("536870912\n"), Some(Some(512 << 20)));
        assert_eq!(parse_limit("lots"), None);
    }

    #[test]
    fn pressure() {
        let p = parse_pressure(
            "some avg10=24.01 avg60=14.53 avg300=7.30 total=46128806\n\
             full avg10=1.50 avg60=0.25 avg300=0.00 total=855475\n",
            true,
        )
        .unwrap();
        assert_eq!(
            (p.some_avg10, p.some_avg60, p.full_avg10, p.full_avg60),
            (24.01, 14.53, 1.5, 0.25)
        );
        assert!(p.system_wide);
        assert_eq!(parse_pressure("", false), None);
        assert_eq!(parse_pressure("some avg10=x", false), None);
    }

    #[test]
    #[cfg_attr(miri, ignore = "file system access, which miri's isolation refuses")]
    fn files_of_a_v2_group() {
        let dir = std::env::temp_dir().join(format!("heaptide-cgroup-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("memory.current"), "1048576\n").unwrap();
        std::fs::write(dir.join("memory.max"), "4194304\n").unwrap();
        std::fs::write(
            dir.join("memory.pressure"),
            "some avg10=0.50 avg60=0.10 avg300=0.00 total=10\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n",
        )
        .unwrap();
        let location = Location {
            version: 2,
            dir: dir.clone(),
        };
        let m = read_at(&location, Path::new("/nonexistent")).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(
            (m.version, m.current_bytes, m.max_bytes),
            (2, 1 << 20, Some(4 << 20))
        );
        assert_eq!(m.used_ratio(), Some(0.25));
        let p = m.pressure.unwrap();
        assert_eq!((p.some_avg10, p.system_wide), (0.5, false));
    }

    #[test]
    #[cfg_attr(miri, ignore = "reads /proc and /sys")]
    fn this_process_if_in_a_memory_cgroup() {
        // Machines without a memory controller read `None`; with one, the group uses memory.
        if let Some(m) = read() {
            assert!(m.current_bytes > 0, "{m:?}");
            assert!(m.version == 1 || m.version == 2);
        }
    }
}
