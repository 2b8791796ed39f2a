//! Folded-stacks writer (being written: see issue 3).

use super::Report;

impl Report {
    /// Writes folded stacks (`root;...;leaf value` lines).
    pub fn write_folded(&self, _w: &mut impl std::io::Write) -> std::io::Result<()> {
        Err(std::io::Error::other("folded writer not written yet"))
    }
}
