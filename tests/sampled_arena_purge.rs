//! The sampled arena gives memory back: pages of sampled blocks that were freed are purged
//! (about a second after they were last used, by the drain thread), and the report's
//! `sampled_arena_resident_bytes` measures the range's resident pages; the overhead figure
//! counts the range's slack, not the program's blocks.

#[global_allocator]
static ALLOC: heaptide::Heaptide = heaptide::Heaptide::new().exact();

const MIB: u64 = 1 << 20;

fn resident() -> u64 {
    heaptide::flush();
    heaptide::report().profiler.sampled_arena_resident_bytes
}

fn overhead() -> u64 {
    heaptide::flush();
    heaptide::report().profiler.overhead_bytes
}

#[test]
fn freed_sampled_pages_are_purged_and_measured() {
    // Exact mode: every block lives in the sampled arena. 64 MiB in 64 KiB blocks, written.
    let blocks: Vec<Vec<u8>> = (0..1024).map(|i| vec![i as u8 | 1; 64 << 10]).collect();
    let held = resident();
    assert!(
        (64 * MIB..96 * MIB).contains(&held),
        "{} MiB resident in the sampled range while 64 MiB of its blocks are held",
        held / MIB
    );
    // The overhead counts the arena's slack, not the program's blocks in it.
    let own = overhead();
    assert!(
        own < 16 * MIB,
        "{} MiB of overhead while the sampled range holds 64 MiB of the program's blocks",
        own / MIB
    );
    drop(blocks);
    // The drain purges pages unused for a second, at most once a second: wait for it (a hang
    // guard of ten minutes, not a time limit on the purge).
    let mut after = resident();
    for _ in 0..6_000 {
        if after < 16 * MIB {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
        after = resident();
    }
    assert!(
        after < 16 * MIB,
        "{} MiB still resident in the sampled range ten minutes after 64 MiB were freed",
        after / MIB
    );
}
