//! Normalising and checking contact details. Junk is not an error: these return `None`/`false`
//! and the policy turns that into an outcome.
