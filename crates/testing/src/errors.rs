//! Reading the project's one error type (`edge_core::Error`) in tests.

use edge_core::Error;

/// The fields a validation error names, in the order they were checked;
/// panics (failing the test) on any error other than the 422.
pub fn fields(err: Error) -> Vec<String> {
    match err {
        Error::Validation { errors } => errors.into_iter().map(|e| e.field).collect(),
        other => panic!("expected 422, got {other:?}"),
    }
}
