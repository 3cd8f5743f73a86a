//! The REST request model: parsing and validating requests and rendering answers, with no
//! I/O.
//!
//! The Easemob REST API's requests are read here: each JSON body, query parameter or header
//! a handler needs is checked in the order Easemob checks it, failing with the exact Easemob
//! error ([`RequestError`]). A send request's body (the current `POST /messages/users` form
//! or the legacy `POST /messages` form) becomes a [`SendRequest`] and then one MSYNC
//! [`Content`](missive_msync::pb::message_body::Content); registrations, profile updates,
//! password changes, presence batches and the user listing become typed requests
//! ([`users`]); a token request becomes its grant ([`token`]); a recall becomes a
//! [`RecallRequest`]; what an upload says besides its bytes, and a download's `Range`,
//! become values ([`files`]). The history endpoints work the same way in both directions: a
//! request becomes a typed query a store can answer with one indexed scan, and the rows it
//! returns become the exact answer the SDK or app server parses.
//!
//! The server's handlers do the I/O — authentication, the store, quotas, idempotency,
//! delivery — and call these parsers at the point where each check belongs, so a request
//! with several faults gets the error it always got; `ApiError` renders a [`RequestError`]
//! as Easemob's error body in one `From` impl. Kept apart from `missive-server` so the rules
//! are unit-tested and fuzzed (`fuzz/`: `rest_send`, `chat_ql`, `rest_users`) without
//! building the server. Not here yet: the callback and pre-send rule bodies of the admin
//! API (their types live in `missive-notify`, which depends on this crate) and the chat file
//! download's query.
//!
//! # Layout
//!
//! - [`error`]: [`RequestError`], everything the server needs to render Easemob's error body.
//! - [`send`]: [`SendRequest`], [`SendForm`], the per-type body → content conversion and the
//!   content size rule, the `Idempotency-Key` header.
//! - [`body`]: the way back, MSYNC content → Easemob's JSON body (`{"ext", "bodies"}`), for
//!   everything that shows a stored message as JSON (callbacks, push summaries, history).
//! - [`history`]: message roaming (`POST /users/{u}/messageroaming`): [`RoamingRequest`],
//!   the archived-message row every history listing renders, message kinds, id windows.
//! - [`conversations`]: the SDK's conversation lists, one-way delete, pinning, roaming
//!   delete, and the read position a channel ack sets.
//! - [`chatlog`]: Easemob's history record format, the hourly export's hour, and the legacy
//!   `GET /chatmessages?ql=` query language.
//! - [`cursor`]: the opaque page cursors of the listings.
//! - [`users`]: registration (one or a batch), `PUT /users/{u}`, password changes, batch
//!   presence, the `GET /users` page, and the user id rule in the REST API's words.
//! - [`token`]: `POST /token`: the grant type, each grant's fields, `ttl`.
//! - [`recall`]: single and batch recall items, the recall window, their answers.
//! - [`files`]: the upload's thumbnail box, file name and content type; the download's
//!   `Range`.
//! - [`query`]: query-string decoding.

pub mod body;
pub mod chatlog;
pub mod conversations;
pub mod cursor;
pub mod error;
pub mod files;
pub mod history;
pub mod query;
pub mod recall;
pub mod send;
pub mod token;
pub mod users;

pub use error::{GrantRefusal, RecallRefusal, RequestError};
pub use history::{ArchivedMessage, RoamingRequest};
pub use recall::{BatchRecall, RecallRequest};
pub use send::{MAX_CUSTOM_EXTS, MESSAGE_TYPES, SendForm, SendRequest, chat_body, opt_bool};
