//! How a command fails: one line for the user, or output cut short by its reader.

/// Why a command stopped.
#[derive(Debug)]
pub enum Failure {
    /// What went wrong, said in one line (`main` prints it after `heaptide: `).
    Message(String),
    /// Standard output was closed by its reader (`| head`): nothing more to say.
    ClosedOutput,
}

/// A command's outcome.
pub type Result<T> = std::result::Result<T, Failure>;

/// A failure that says `message`.
pub fn fail(message: impl Into<String>) -> Failure {
    Failure::Message(message.into())
}
