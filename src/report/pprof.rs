//! pprof writer (being written: see issue 3).

use super::Report;

impl Report {
    /// Writes the report as a gzipped pprof `profile.proto`.
    pub fn write_pprof(&self, _w: &mut impl std::io::Write) -> std::io::Result<()> {
        Err(std::io::Error::other("pprof writer not written yet"))
    }
}
