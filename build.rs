//! Detects whether the crate is compiled with frame pointers (`-C force-frame-pointers=yes`
//! in RUSTFLAGS or `build.rustflags`). If so, and on x86_64 or aarch64, the sampling path walks
//! the frame-pointer chain (tens of nanoseconds) instead of unwinding with DWARF tables
//! (microseconds). The flags seen here are the ones the whole program is built with, so user
//! code has frame pointers too, and the standard library is shipped with them.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(heaptide_frame_pointers)");
    println!("cargo:rerun-if-env-changed=CARGO_ENCODED_RUSTFLAGS");
    let flags = std::env::var("CARGO_ENCODED_RUSTFLAGS").unwrap_or_default();
    let arch = std::env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    if frame_pointers_forced(&flags) && (arch == "x86_64" || arch == "aarch64") {
        println!("cargo:rustc-cfg=heaptide_frame_pointers");
    }
}

/// Whether the last `force-frame-pointers` codegen option in the flags turns them on.
fn frame_pointers_forced(encoded: &str) -> bool {
    let args: Vec<&str> = encoded.split('\x1f').collect();
    let mut on = false;
    for (i, arg) in args.iter().enumerate() {
        let option = match *arg {
            "-C" | "--codegen" => args.get(i + 1).copied().unwrap_or(""),
            a => match a
                .strip_prefix("-C")
                .or_else(|| a.strip_prefix("--codegen="))
            {
                Some(rest) => rest,
                None => continue,
            },
        };
        if let Some(value) = option.strip_prefix("force-frame-pointers") {
            on = matches!(value, "" | "=yes" | "=y" | "=on" | "=true" | "=always");
        }
    }
    on
}
