//! The sampled range's reservation counts against `RLIMIT_AS` (`ulimit -v`): it is sized from
//! the limit so the program's own allocations still succeed. A child runs under a 3 GiB limit
//! (set before exec) and allocates 1.5 GiB.
//!
//! Why 1.5 GiB: jemalloc maps a 1.5 GiB request as 1,792 MiB (2 GiB as 2,560 MiB), and each
//! thread that calls the C library's malloc (Rust's thread-local destructors register through
//! it) reserves a 64 MiB glibc arena. The child peaks at about 2,310 MiB of address space,
//! leaving some 760 MiB of the limit to spare. A 2 GiB request would leave about 26 MiB, less
//! than one more glibc arena: whether a thread took one would decide the outcome.

use std::os::unix::process::CommandExt as _;
use std::process::{Command, Stdio};

#[global_allocator]
static ALLOC: heaptide::Heaptide = heaptide::Heaptide::new();

const CHILD: &str = "HEAPTIDE_TEST_CHILD";

#[test]
fn child() {
    if std::env::var(CHILD).as_deref() != Ok("big") {
        return;
    }
    let mut v: Vec<u8> = Vec::new();
    match v.try_reserve_exact(3 << 29) {
        Ok(()) => {
            // Touch one byte per MiB: the memory is really there.
            for i in (0..(3usize << 29)).step_by(1 << 20) {
                v.spare_capacity_mut()[i].write(1);
            }
            let report = heaptide::report();
            println!("1.5 GiB ok; samples {}", report.profiler.samples);
        }
        Err(e) => println!("1.5 GiB failed: {e}"),
    }
}

#[test]
fn a_1_5_gib_allocation_succeeds_under_a_3_gib_address_space_limit() {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["--exact", "child", "--nocapture", "--test-threads=1"])
        .env(CHILD, "big")
        .env_remove("HEAPTIDE_SAMPLE")
        .stdin(Stdio::null());
    // SAFETY: the closure runs in the forked child before exec and only calls setrlimit, which
    // is async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            let limit = libc::rlimit {
                rlim_cur: 3 << 30,
                rlim_max: 3 << 30,
            };
            if libc::setrlimit(libc::RLIMIT_AS, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        })
    };
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("1.5 GiB ok"),
        "{}\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        out.status
    );
    // Profiling stayed on, and said why its range is small.
    assert!(
        stderr.contains("heaptide: RLIMIT_AS is set"),
        "--- stderr\n{stderr}"
    );
}
