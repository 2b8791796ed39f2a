//! The process's executable mappings, for the pprof writer's mapping table: the main binary
//! and the shared objects, as `/proc/self/maps` lists them, with the GNU build id of each file
//! when its ELF notes can be read.
//!
//! `go tool pprof` takes the first mapping for the main binary: it names it in the profile's
//! header (`File: ...`) and looks the binary up by path and build id when asked for
//! disassembly or source (`-disasm`, `-list`). The profile's frames are symbolized already.

/// One executable mapping of a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Mapping {
    /// First address.
    pub(crate) start: u64,
    /// One past the last address.
    pub(crate) limit: u64,
    /// Offset in the file of the first byte mapped.
    pub(crate) offset: u64,
    /// The file's path.
    pub(crate) path: String,
    /// The GNU build id in lower-case hex (empty if the file has none or cannot be read).
    pub(crate) build_id: String,
}

/// This process's executable file mappings, the main binary first, then by address (empty if
/// `/proc/self/maps` cannot be read).
pub(crate) fn current() -> Vec<Mapping> {
    let Ok(maps) = std::fs::read_to_string("/proc/self/maps") else {
        return Vec::new();
    };
    let exe = std::fs::read_link("/proc/self/exe")
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut mappings = parse_maps(&maps);
    // Stable: the main binary's mappings first, each group in address order.
    mappings.sort_by_key(|m| m.path != exe);
    let mut ids: Vec<(String, String)> = Vec::new();
    for m in &mut mappings {
        m.build_id = match ids.iter().find(|(p, _)| *p == m.path) {
            Some((_, id)) => id.clone(),
            None => {
                let id = build_id(&m.path).unwrap_or_default();
                ids.push((m.path.clone(), id.clone()));
                id
            }
        };
    }
    mappings
}

/// The executable mappings of files in the text of `/proc/<pid>/maps`
/// (`start-end perms offset dev inode path`), in the file's order.
pub(crate) fn parse_maps(maps: &str) -> Vec<Mapping> {
    maps.lines()
        .filter_map(|line| {
            let mut fields = line.split_ascii_whitespace();
            let (range, perms, offset) = (fields.next()?, fields.next()?, fields.next()?);
            let path = fields.nth(2)?;
            // Files only (not `[vdso]`, `[heap]` or anonymous memory), executable ones.
            if !path.starts_with('/') || !perms.contains('x') {
                return None;
            }
            // A path with spaces, or a deleted file (` (deleted)`): the rest of the line.
            let path = line[line.find(path)?..].trim_end();
            let (start, end) = range.split_once('-')?;
            Some(Mapping {
                start: u64::from_str_radix(start, 16).ok()?,
                limit: u64::from_str_radix(end, 16).ok()?,
                offset: u64::from_str_radix(offset, 16).ok()?,
                path: path.to_string(),
                build_id: String::new(),
            })
        })
        .collect()
}

/// The GNU build id of a 64-bit ELF file, read through its file header, program headers and
/// notes only (a few hundred bytes, whatever the size of the file and its symbol tables).
fn build_id(path: &str) -> Option<String> {
    use object::read::elf::{FileHeader, ProgramHeader};
    let file = std::fs::File::open(path).ok()?;
    let data = &object::ReadCache::new(file);
    let header = object::elf::FileHeader64::<object::Endianness>::parse(data).ok()?;
    let endian = header.endian().ok()?;
    for segment in header.program_headers(endian, data).ok()? {
        let Ok(Some(mut notes)) = segment.notes(endian, data) else {
            continue;
        };
        while let Ok(Some(note)) = notes.next() {
            if note.name() == b"GNU" && note.n_type(endian) == object::elf::NT_GNU_BUILD_ID {
                return Some(note.desc().iter().map(|b| format!("{b:02x}")).collect());
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_lines_are_parsed() {
        let maps = "\
55d0c0a00000-55d0c0a20000 r--p 00000000 08:01 1234 /usr/bin/prog
55d0c0a20000-55d0c0b00000 r-xp 00020000 08:01 1234 /usr/bin/prog
7f0000000000-7f0000100000 rw-p 00000000 00:00 0
7f1000000000-7f1000200000 r-xp 00028000 08:01 99 /lib/x86_64-linux-gnu/libc.so.6
7f2000000000-7f2000001000 r-xp 00000000 08:01 77 /tmp/a dir/lib x.so (deleted)
7ffd00000000-7ffd00002000 r-xp 00000000 00:00 0 [vdso]
";
        let m = parse_maps(maps);
        assert_eq!(m.len(), 3, "{m:#?}");
        assert_eq!(
            m[0],
            Mapping {
                start: 0x55d0c0a20000,
                limit: 0x55d0c0b00000,
                offset: 0x20000,
                path: "/usr/bin/prog".to_string(),
                build_id: String::new(),
            }
        );
        assert_eq!(m[1].path, "/lib/x86_64-linux-gnu/libc.so.6");
        assert_eq!(m[1].offset, 0x28000);
        assert_eq!(m[2].path, "/tmp/a dir/lib x.so (deleted)");
    }

    #[test]
    #[cfg_attr(miri, ignore = "reads /proc/self/maps and ELF files")]
    fn this_process_maps_its_binary_first() {
        let m = current();
        let exe = std::fs::read_link("/proc/self/exe").unwrap();
        assert_eq!(m[0].path, exe.to_string_lossy());
        assert!(m[0].start < m[0].limit);
        // Rust's linker driver asks for a build id on Linux.
        assert!(
            m[0].build_id.len() >= 16 && m[0].build_id.bytes().all(|b| b.is_ascii_hexdigit()),
            "{:?}",
            m[0].build_id
        );
    }
}
