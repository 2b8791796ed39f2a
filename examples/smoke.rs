#[global_allocator]
static ALLOC: heaptide::Heaptide = heaptide::Heaptide::new();

#[inline(never)]
fn keep(n: usize) -> Vec<Vec<u8>> {
    (0..n).map(|i| vec![i as u8; 4096]).collect()
}

fn main() {
    let kept = keep(10_000);
    let mut churn = 0usize;
    for i in 0..200_000 {
        let v = vec![0u8; 100 + i % 1000];
        churn += v.len();
    }
    let r = heaptide::report();
    println!("{r}");
    println!("kept {} churn {churn} {:?}", kept.len(), r.profiler);
}
