//! The notify worker (SPEC §9), arriving in steps (docs/design/notify.md §10). What is
//! here so far: the request model that the stream intake and `POST /api/v1/notifications`
//! share.

pub mod request;
