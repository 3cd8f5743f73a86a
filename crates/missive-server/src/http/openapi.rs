//! The OpenAPI 3.1 description of the REST API, generated from the code and served at
//! `GET /openapi.json`.
//!
//! Handlers parse their bodies by hand from `serde_json::Value`, so that every refusal carries
//! Easemob's exact error strings; the types here exist only to *describe* those bodies, the
//! success envelopes and the error body. They are never constructed. Each handler carries a
//! `#[utoipa::path]` attribute naming its statuses, with the reusable error responses below
//! (all the Easemob error body). `scripts/schemathesis.sh` fuzzes the live server against this
//! document, and `tests/it/openapi.rs` checks it lists every route the router serves.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::Value;
use utoipa::openapi::schema::{AllOfBuilder, ArrayBuilder, ObjectBuilder, OneOfBuilder, Schema, SchemaType, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{OpenApi as Document, Ref, RefOr};
use utoipa::{IntoParams, Modify, OpenApi, PartialSchema, ToResponse, ToSchema};

use super::{callbacks, contacts, conversations, files, groups, history, messages, token, users};

/// The whole document. `paths(...)` must name every handler of `http::router()`; the
/// integration test `openapi` fails when a route is missing here.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Missive REST API",
        description = "Easemob-compatible IM REST API. Every path is under `/{org}/{app}`; requests \
            authenticate with `Authorization: Bearer <token>` (the app token from client credentials \
            unlocks everything, a user token only its own data). Every error, on every route, is the \
            Easemob error body (`ErrorBody`); a method a path does not serve answers 405 \
            `method_not_allowed`, an unknown path 404 `service_resource_not_found`, request headers \
            over 16 KiB 431.",
        license(name = "Apache-2.0"),
    ),
    paths(
        super::health,
        super::ready,
        openapi_json,
        token::issue_token,
        users::create_users,
        users::list_users,
        users::delete_users,
        users::batch_status,
        users::get_user,
        users::update_user,
        users::delete_user,
        users::set_password,
        users::deactivate_user,
        users::activate_user,
        users::user_status,
        users::offline_msg_count,
        users::offline_msg_status,
        users::user_resources,
        users::disconnect_all,
        users::disconnect_one,
        contacts::roster_version,
        groups::joined_chatgroups,
        groups::joined_chatrooms,
        groups::public_chatgroups,
        groups::list_chatgroups,
        groups::create_chatgroup,
        groups::user_chatgroups,
        groups::list_chatrooms,
        groups::create_chatroom,
        messages::send_legacy,
        messages::send_user_messages,
        messages::recall_message,
        messages::recall_messages,
        history::roaming,
        history::export,
        history::export_file,
        history::chat_log,
        history::delete_chat_roaming,
        history::delete_chat_roaming_before,
        history::delete_group_roaming,
        history::delete_group_roaming_before,
        history::sdk_delete_chat_roaming,
        history::sdk_delete_chat_roaming_before,
        conversations::list,
        conversations::legacy_list,
        conversations::legacy_page,
        conversations::delete,
        conversations::sdk_delete,
        conversations::pin,
        conversations::unpin,
        files::upload::upload,
        files::download::download,
        callbacks::add_callback,
        callbacks::list_callbacks,
        callbacks::update_callback,
        callbacks::remove_callback,
        callbacks::storage_info,
        callbacks::storage_retry,
        callbacks::add_presend,
        callbacks::list_presend,
        callbacks::remove_presend,
    ),
    components(
        schemas(ErrorBody),
        responses(
            BadRequest,
            Unauthorized,
            Forbidden,
            NotFound,
            Conflict,
            PayloadTooLarge,
            RangeNotSatisfiable,
            TooManyRequests,
            ServiceUnavailable,
            InsufficientStorage,
        ),
    ),
    modifiers(&BearerToken, &Tidy),
    tags(
        (name = "tokens", description = "App and user tokens."),
        (name = "users", description = "The user system."),
        (name = "messages", description = "One-to-one sends and recall."),
        (name = "history", description = "Message roaming, the hourly export, the legacy chat-log query, roaming deletes."),
        (name = "conversations", description = "Conversation lists with unread counts, one-way delete, pinning."),
        (name = "chatfiles", description = "Chat file upload and download."),
        (name = "callbacks", description = "Post-send and pre-send callback rules, and exception storage."),
        (name = "contacts", description = "Contacts: only the roster version so far (every roster is empty)."),
        (name = "groups", description = "Groups and chat rooms: not open yet (empty listings, creation refused)."),
        (name = "server", description = "Health and this document."),
    ),
)]
pub struct ApiDoc;

/// Serialized once: the document is fixed for the life of the process.
static DOCUMENT: LazyLock<String> =
    LazyLock::new(|| ApiDoc::openapi().to_json().expect("the OpenAPI document serializes"));

/// This OpenAPI document (no token needed).
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "server",
    responses((status = 200, description = "An OpenAPI 3.1 document.", body = Object)),
    security(()),
)]
pub async fn openapi_json() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], DOCUMENT.as_str()).into_response()
}

/// Declares the `bearer` scheme the operations' `security(...)` refer to.
struct BearerToken;

impl Modify for BearerToken {
    fn modify(&self, doc: &mut Document) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "An opaque token from `POST /{org}/{app}/token`: the app token (client \
                         credentials) or a user token (password or inherit grant).",
                    ))
                    .build(),
            ),
        );
    }
}

/// Fixes two things the derive cannot express: an operation served under two methods
/// (`PUT` and `POST /users/{u}/password`) gets one operation id per method, as OpenAPI
/// requires; and optional query/header parameters are absent or a string, never JSON null.
struct Tidy;

impl Modify for Tidy {
    fn modify(&self, doc: &mut Document) {
        for item in doc.paths.paths.values_mut() {
            if let (Some(put), Some(post)) = (&item.put, &mut item.post)
                && put.operation_id == post.operation_id
            {
                post.operation_id = post.operation_id.take().map(|id| format!("{id}_post"));
            }
            let operations = [&mut item.get, &mut item.put, &mut item.post, &mut item.delete];
            for op in operations.into_iter().flatten() {
                for param in op.parameters.iter_mut().flatten() {
                    if let RefOr::T(param) = param
                        && let Some(RefOr::T(Schema::Object(schema))) = &mut param.schema
                        && let SchemaType::Array(types) = &schema.schema_type
                    {
                        let concrete: Vec<Type> = types.iter().filter(|t| **t != Type::Null).cloned().collect();
                        if let [only] = concrete.as_slice() {
                            schema.schema_type = SchemaType::Type(only.clone());
                        }
                    }
                }
            }
        }
    }
}

// --- path parameters ----------------------------------------------------------------------

/// `{org}/{app}`: the app every route is under.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
pub struct AppPath {
    /// Organization name (first half of the App Key `org#app`).
    #[param(example = "demo", min_length = 1)]
    pub org: String,
    /// App name (second half of the App Key).
    #[param(example = "demo", min_length = 1)]
    pub app: String,
}

/// `{org}/{app}` plus the user named in the path.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
pub struct UserPath {
    /// Organization name.
    #[param(example = "demo", min_length = 1)]
    pub org: String,
    /// App name.
    #[param(example = "demo", min_length = 1)]
    pub app: String,
    /// User id, case-insensitive; an unknown or invalid one is 404.
    #[param(example = "user1", min_length = 1)]
    pub username: String,
}

/// `limit` and `cursor` of the user listing and batch deletion.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Users per page, 1–100 (default 10); anything else is 400.
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
    /// The `cursor` of the previous page; an unknown one is 400.
    pub cursor: Option<String>,
}

// --- errors -------------------------------------------------------------------------------

/// Easemob's error body, on every failure of every route.
#[derive(ToSchema)]
#[schema(example = json!({
    "error": "unauthorized",
    "exception": "com.easemob.im.exceptions.EasemobSecurityException",
    "timestamp": 1795688049437u64,
    "duration": 0,
    "error_description": "Unable to authenticate (OAuth)"
}))]
pub struct ErrorBody {
    /// Machine-readable error, e.g. `unauthorized`, `illegal_argument`, `message_send_error`.
    pub error: String,
    /// The Java exception name Easemob reports, e.g. `java.lang.IllegalArgumentException`.
    pub exception: String,
    /// Unix time in milliseconds.
    pub timestamp: u64,
    /// Milliseconds the request took.
    pub duration: u64,
    /// Human-readable detail, with Easemob's exact wording.
    pub error_description: String,
    /// Present on newer message errors (14007: message content too large).
    #[schema(required = false)]
    pub error_code: u32,
}

/// Malformed JSON (`invalid_request_body`), a field of the wrong type, or a value refused
/// (`illegal_argument`, `message_send_error`, `invalid_grant`, `duplicate_unique_property_exists`,
/// `message_recall_error`).
#[derive(ToResponse)]
pub struct BadRequest(pub ErrorBody);

/// No token, a corrupt, unknown, expired or other app's token, a user token on an app-token
/// operation, or a missing/wrong `share-secret` for a restricted file.
#[derive(ToResponse)]
pub struct Unauthorized(pub ErrorBody);

/// Refused by a quota (`message send reach limit`) or by recall rules (`not_found msg`,
/// `exceed recall time limit`).
#[derive(ToResponse)]
pub struct Forbidden(pub ErrorBody);

/// Unknown `{org}/{app}` (`organization_application_not_found`), or an unknown user, file or
/// route (`service_resource_not_found`, `entity_not_found`, `file_expired`).
#[derive(ToResponse)]
pub struct NotFound(pub ErrorBody);

/// Two requests auto-created the same user at once (`inherit` grant).
#[derive(ToResponse)]
pub struct Conflict(pub ErrorBody);

/// Request body over its limit (`limits.send_body_bytes` on sends and recalls,
/// `limits.json_body_bytes` elsewhere, `files.max_bytes` on uploads).
#[derive(ToResponse)]
pub struct PayloadTooLarge(pub ErrorBody);

/// A `Range` starting past the end of the file (`Content-Range: bytes */LEN`).
#[derive(ToResponse)]
pub struct RangeNotSatisfiable(pub ErrorBody);

/// Over the app's send calls per second (`reach_limit`).
#[derive(ToResponse)]
pub struct TooManyRequests(pub ErrorBody);

/// Load shed (`limits.max_inflight_sends`) or storage busy (`service_unavailable`); retry.
#[derive(ToResponse)]
pub struct ServiceUnavailable(pub ErrorBody);

/// The data disk is full (`storage_full`); nothing was stored.
#[derive(ToResponse)]
pub struct InsufficientStorage(pub ErrorBody);

// --- shared shapes ------------------------------------------------------------------------

/// The Usergrid envelope of most success bodies.
#[derive(ToSchema, Serialize)]
pub struct Envelope {
    /// Lower-case HTTP verb (`post`, `get`, …) or Easemob's phrase for the operation.
    pub action: String,
    /// The app's UUID.
    #[schema(format = "uuid")]
    pub application: String,
    #[serde(rename = "applicationName")]
    pub application_name: String,
    pub organization: String,
    /// Collection path without `{org}/{app}` and without the item (`/users` for `/users/u1`).
    pub path: String,
    /// `scheme://host/{org}/{app}/…`, built from the request's `Host`.
    pub uri: String,
    /// Unix time in milliseconds.
    pub timestamp: u64,
    /// Milliseconds the request took.
    pub duration: u64,
}

/// The short envelope some user operations answer with.
#[derive(ToSchema, Serialize)]
pub struct BareEnvelope {
    pub action: String,
    pub timestamp: u64,
    pub duration: u64,
}

/// A user as `entities[]` shows it; notification settings set with `PUT /users/{u}` appear
/// as further properties.
#[derive(ToSchema, Serialize)]
pub struct UserEntity {
    #[schema(format = "uuid")]
    pub uuid: String,
    #[serde(rename = "type")]
    pub entity_type: UserType,
    /// Unix time in milliseconds.
    pub created: i64,
    /// Unix time in milliseconds.
    pub modified: i64,
    /// Lower-case user id.
    pub username: String,
    /// False while deactivated (banned).
    pub activated: bool,
    #[schema(required = false)]
    pub nickname: String,
}

#[derive(ToSchema, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum UserType {
    User,
}

// --- tokens -------------------------------------------------------------------------------

/// `POST /token`. `client_credentials` needs `client_id` and `client_secret`; `password`
/// needs `username` and `password`; `inherit` (app token required) needs `username`.
#[derive(ToSchema)]
#[schema(example = json!({"grant_type": "client_credentials", "client_id": "YXA6…", "client_secret": "YXA6…", "ttl": 1024000}))]
pub struct TokenRequest {
    pub grant_type: GrantType,
    #[schema(required = false)]
    pub client_id: String,
    #[schema(required = false)]
    pub client_secret: String,
    #[schema(required = false)]
    pub username: String,
    #[schema(required = false)]
    pub password: String,
    /// Lifetime in seconds, a number or numeric string; 0 never expires; absent: 60 days.
    #[schema(required = false, schema_with = seconds_schema)]
    pub ttl: u64,
    /// `inherit` only: create the user if it does not exist.
    #[schema(rename = "autoCreateUser", required = false)]
    pub auto_create_user: bool,
}

#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
pub enum GrantType {
    ClientCredentials,
    Password,
    Inherit,
}

/// An app token (`client_credentials`) or a user token (`password`, `inherit`).
#[derive(ToSchema, Serialize)]
#[serde(untagged)]
pub enum TokenResponse {
    App(AppToken),
    User(UserToken),
}

#[derive(ToSchema, Serialize)]
pub struct AppToken {
    pub access_token: String,
    /// Seconds until expiry; 0 for a token that never expires.
    pub expires_in: u64,
    /// The app's UUID.
    #[schema(format = "uuid")]
    pub application: String,
}

#[derive(ToSchema, Serialize)]
pub struct UserToken {
    pub access_token: String,
    /// Seconds until expiry; 0 for a token that never expires.
    pub expires_in: u64,
    pub user: UserEntity,
}

// --- users --------------------------------------------------------------------------------

/// One registration. Ids are 1–64 bytes of `a-z 0-9 _ - .` (upper case is folded).
#[derive(ToSchema)]
pub struct RegisterUser {
    #[schema(min_length = 1, max_length = 64, pattern = "^[A-Za-z0-9_.-]+$", example = "user1")]
    pub username: String,
    #[schema(min_length = 1, max_length = 64, example = "pw1")]
    pub password: String,
    #[schema(required = false, max_length = 100)]
    pub nickname: String,
}

/// One user (open registration, or the app token), or 1–60 (app token) with partial
/// success reported in `data`. Written by hand: the derive cannot bound a variant's array.
pub struct RegisterBody;

impl PartialSchema for RegisterBody {
    fn schema() -> RefOr<Schema> {
        let one = || RefOr::Ref(Ref::from_schema_name(RegisterUser::name()));
        OneOfBuilder::new()
            .description(Some("One registration, or a batch of 1–60."))
            .item(one())
            .item(ArrayBuilder::new().items(one()).min_items(Some(1)).max_items(Some(60)))
            .into()
    }
}

impl ToSchema for RegisterBody {
    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        schemas.push((RegisterUser::name().into(), RegisterUser::schema()));
        RegisterUser::schemas(schemas);
    }
}

/// A registration of a batch that failed, and why.
#[derive(ToSchema, Serialize)]
pub struct RegisterFailure {
    pub username: String,
    #[serde(rename = "registerUserFailReason")]
    pub register_user_fail_reason: String,
}

/// The query echo: every value an array of strings.
#[derive(ToSchema, Serialize)]
pub struct Params(BTreeMap<String, Vec<String>>);

/// Users created, read, updated, listed or deleted.
#[derive(ToSchema, Serialize)]
pub struct UsersResponse {
    #[serde(flatten)]
    pub envelope: Envelope,
    pub entities: Vec<UserEntity>,
    /// On reads, listings and batch deletion.
    #[schema(required = false)]
    pub count: u64,
    /// Batch registration: the registrations that failed.
    #[schema(required = false)]
    pub data: Vec<RegisterFailure>,
    /// The query echo, when the request had a query string.
    #[schema(required = false)]
    pub params: Params,
    /// Listing: present only when more users remain.
    #[schema(required = false)]
    pub cursor: String,
}

/// Nickname and notification settings; other keys are ignored.
#[derive(ToSchema)]
pub struct UserUpdate {
    #[schema(required = false, max_length = 100)]
    pub nickname: String,
    /// 0: a summary only, 1: the message content.
    #[schema(required = false, minimum = 0, maximum = 1)]
    pub notification_display_style: u8,
    #[schema(required = false)]
    pub notification_no_disturbing: bool,
    /// Hour the no-disturbing period starts, a number or a string.
    #[schema(required = false, schema_with = hour_schema)]
    pub notification_no_disturbing_start: u8,
    /// Hour the no-disturbing period ends, a number or a string.
    #[schema(required = false, schema_with = hour_schema)]
    pub notification_no_disturbing_end: u8,
    #[schema(required = false)]
    pub notifier_name: String,
    #[schema(required = false)]
    pub device_token: String,
}

/// The app token sets `newpassword`; a user changing its own also sends `oldpassword`.
#[derive(ToSchema)]
pub struct PasswordChange {
    #[schema(min_length = 1, max_length = 64)]
    pub newpassword: String,
    #[schema(required = false)]
    pub oldpassword: String,
}

/// Up to 100 user ids; unknown ones are reported offline.
#[derive(ToSchema)]
pub struct BatchStatusRequest {
    #[schema(max_items = 100)]
    pub usernames: Vec<String>,
}

#[derive(ToSchema, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Presence {
    Online,
    Offline,
}

#[derive(ToSchema, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryState {
    Delivered,
    Undelivered,
}

/// Password set, or user activated: the short envelope.
#[derive(ToSchema, Serialize)]
pub struct BareResponse {
    #[serde(flatten)]
    pub envelope: BareEnvelope,
}

/// The deactivated user.
#[derive(ToSchema, Serialize)]
pub struct DeactivateResponse {
    #[serde(flatten)]
    pub envelope: BareEnvelope,
    pub entities: Vec<UserEntity>,
}

/// `data`: the user id → `online` / `offline`.
#[derive(ToSchema, Serialize)]
pub struct UserStatusResponse {
    #[serde(flatten)]
    pub envelope: Envelope,
    /// Always empty: these operations report in `data`.
    #[schema(value_type = Vec<Object>, max_items = 0)]
    pub entities: Vec<Value>,
    pub data: BTreeMap<String, Presence>,
    pub count: u64,
}

/// `data`: one `{user id: status}` object per id asked, in order.
#[derive(ToSchema, Serialize)]
pub struct BatchStatusResponse {
    #[serde(flatten)]
    pub envelope: BareEnvelope,
    pub data: Vec<BTreeMap<String, Presence>>,
}

/// `data`: the user id → messages waiting that no device has acked.
#[derive(ToSchema, Serialize)]
pub struct OfflineCountResponse {
    #[serde(flatten)]
    pub envelope: Envelope,
    /// Always empty: these operations report in `data`.
    #[schema(value_type = Vec<Object>, max_items = 0)]
    pub entities: Vec<Value>,
    pub data: BTreeMap<String, u64>,
    pub count: u64,
}

/// `data`: the message id → `undelivered` while it waits unacked, else `delivered`.
#[derive(ToSchema, Serialize)]
pub struct OfflineStatusResponse {
    #[serde(flatten)]
    pub envelope: Envelope,
    /// Always empty: these operations report in `data`.
    #[schema(value_type = Vec<Object>, max_items = 0)]
    pub entities: Vec<Value>,
    pub data: BTreeMap<String, DeliveryState>,
    pub count: u64,
}

/// A device online now.
#[derive(ToSchema, Serialize)]
pub struct Resource {
    /// The MSYNC resource, e.g. `webim_web_1795…`.
    pub res: String,
    pub device_uuid: String,
    pub device_name: String,
}

#[derive(ToSchema, Serialize)]
pub struct ResourcesResponse {
    #[serde(flatten)]
    pub envelope: Envelope,
    /// Always empty: these operations report in `data`.
    #[schema(value_type = Vec<Object>, max_items = 0)]
    pub entities: Vec<Value>,
    pub data: Vec<Resource>,
    pub count: u64,
}

#[derive(ToSchema, Serialize)]
pub struct DisconnectResult {
    pub result: bool,
}

/// Devices logged out (also when none was online).
#[derive(ToSchema, Serialize)]
pub struct DisconnectResponse {
    #[serde(flatten)]
    pub envelope: Envelope,
    /// Always empty: these operations report in `data`.
    #[schema(value_type = Vec<Object>, max_items = 0)]
    pub entities: Vec<Value>,
    pub data: DisconnectResult,
    #[schema(required = false)]
    pub count: u64,
}

// --- messages -----------------------------------------------------------------------------

#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum MessageType {
    Txt,
    Img,
    Audio,
    Video,
    File,
    Loc,
    Cmd,
    Custom,
}

#[derive(ToSchema)]
pub enum RouteType {
    #[schema(rename = "ROUTE_ONLINE")]
    RouteOnline,
    #[schema(rename = "ROUTE_ALL")]
    RouteAll,
}

/// The message content; which fields apply depends on `type`: `txt`: `msg`; `img`: `url`,
/// `filename`, `secret`, `size`; `audio`: `url`, `filename`, `secret`, `length`; `video`:
/// `url`, `filename`, `thumb`, `length`, `secret`, `file_length`, `thumb_secret`; `file`:
/// `url`, `filename`, `secret`; `loc`: `lat`, `lng`, `addr`; `cmd`: `action`; `custom`:
/// `customEvent`, `customExts`. The compact JSON of the body plus `ext` is limited to
/// `limits.message_content_bytes` (3 KB): 400 `message is too large`, `error_code` 14007.
#[derive(ToSchema)]
pub struct MessageBody {
    /// The type, when not given beside the body (the legacy `msg` carries it here).
    #[schema(rename = "type", required = false)]
    pub msg_type: MessageType,
    #[schema(required = false)]
    pub msg: String,
    #[schema(required = false)]
    pub url: String,
    #[schema(required = false)]
    pub filename: String,
    #[schema(required = false)]
    pub secret: String,
    #[schema(required = false)]
    pub size: ImageSize,
    /// Seconds of audio or video.
    #[schema(required = false, schema_with = number_schema)]
    pub length: f64,
    #[schema(required = false, schema_with = number_schema)]
    pub file_length: f64,
    #[schema(required = false)]
    pub thumb: String,
    #[schema(required = false)]
    pub thumb_secret: String,
    #[schema(required = false, schema_with = number_schema)]
    pub lat: f64,
    #[schema(required = false, schema_with = number_schema)]
    pub lng: f64,
    #[schema(required = false)]
    pub addr: String,
    #[schema(rename = "buildingName", required = false)]
    pub building_name: String,
    #[schema(required = false)]
    pub action: String,
    #[schema(rename = "customEvent", required = false, pattern = "^[a-zA-Z0-9/_.-]{1,32}$")]
    pub custom_event: String,
    /// At most 16 string values.
    #[schema(rename = "customExts", required = false)]
    pub custom_exts: BTreeMap<String, String>,
}

#[derive(ToSchema)]
pub struct ImageSize {
    #[schema(required = false, schema_with = number_schema)]
    pub width: f64,
    #[schema(required = false, schema_with = number_schema)]
    pub height: f64,
}

/// `POST /messages/users`: one message to up to 600 users (`limits.max_recipients`). The raw
/// body is limited to `limits.send_body_bytes` (5 KB): 413.
#[derive(ToSchema)]
#[schema(example = json!({"from": "user1", "to": ["user2"], "type": "txt", "body": {"msg": "hello"}}))]
pub struct SendMessage {
    /// The sender; `admin` when absent.
    #[schema(required = false, min_length = 1)]
    pub from: String,
    /// 1–600 user ids (`limits.max_recipients`); ids that are not users still get an id.
    #[schema(schema_with = recipients_schema)]
    pub to: Vec<String>,
    #[schema(rename = "type")]
    pub msg_type: MessageType,
    pub body: MessageBody,
    /// Extension fields, delivered with the message.
    #[schema(required = false, value_type = Object)]
    pub ext: Value,
    /// `ROUTE_ONLINE`: online devices only, nothing stored.
    #[schema(required = false)]
    pub routetype: RouteType,
    /// Also copy the message to the sender's online devices.
    #[schema(required = false)]
    pub sync_device: bool,
    #[schema(required = false)]
    pub roam_ignore_users: Vec<String>,
}

#[derive(ToSchema)]
pub enum TargetType {
    #[schema(rename = "users")]
    Users,
}

/// `POST /messages`, the legacy form: `target` instead of `to`, `msg` (with its `type`)
/// instead of `type` and `body`.
#[derive(ToSchema)]
#[schema(example = json!({"target_type": "users", "target": ["user2"], "msg": {"type": "txt", "msg": "hello"}, "from": "user1"}))]
pub struct LegacySendMessage {
    /// Only `users`; groups and chat rooms are 400.
    pub target_type: TargetType,
    #[schema(schema_with = recipients_schema)]
    pub target: Vec<String>,
    pub msg: LegacyMsg,
    #[schema(required = false, min_length = 1)]
    pub from: String,
    #[schema(required = false, value_type = Object)]
    pub ext: Value,
    #[schema(required = false)]
    pub routetype: RouteType,
    #[schema(required = false)]
    pub sync_device: bool,
}

/// The legacy `msg`: a `MessageBody` that carries its `type`. Written by hand: the derive
/// cannot make one field of a shared schema required.
pub struct LegacyMsg;

impl PartialSchema for LegacyMsg {
    fn schema() -> RefOr<Schema> {
        AllOfBuilder::new()
            .item(RefOr::Ref(Ref::from_schema_name(MessageBody::name())))
            .item(ObjectBuilder::new().required("type"))
            .into()
    }
}

impl ToSchema for LegacyMsg {
    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        schemas.push((MessageBody::name().into(), MessageBody::schema()));
        MessageBody::schemas(schemas);
    }
}

/// `data`: recipient → message id (19-digit decimal string; legacy without `useMsgId=true`:
/// `"success"`).
#[derive(ToSchema, Serialize)]
pub struct SendResponse {
    #[serde(flatten)]
    pub envelope: Envelope,
    pub data: BTreeMap<String, String>,
}

#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum ChatType {
    Chat,
    Groupchat,
    Chatroom,
}

/// One recall. Only one-to-one (`chat`) messages are found; without `force`, only within
/// `messages.recall_window_secs` (120 s).
#[derive(ToSchema)]
#[schema(example = json!({"msg_id": "1608794293000994816", "to": "user2", "from": "user1", "chat_type": "chat", "force": false}))]
pub struct RecallRequest {
    /// A string or a number.
    #[schema(schema_with = id_schema)]
    pub msg_id: String,
    /// The recipient of the message.
    pub to: String,
    #[schema(required = false)]
    pub from: String,
    pub chat_type: ChatType,
    #[schema(required = false)]
    pub force: bool,
}

#[derive(ToSchema)]
pub struct BatchRecallRequest {
    pub msgs: Vec<RecallRequest>,
}

#[derive(ToSchema, Serialize)]
pub struct Recalled {
    /// `yes`.
    pub recalled: String,
    pub chattype: String,
    pub from: String,
    pub to: String,
    pub msg_id: String,
}

#[derive(ToSchema, Serialize)]
pub struct RecallResponse {
    #[serde(flatten)]
    pub envelope: Envelope,
    pub data: Recalled,
}

/// One item of a batch recall: `recalled` is `yes`, or why not (`not_found msg`, …).
#[derive(ToSchema, Serialize)]
pub struct BatchRecalled {
    /// As sent (numbers as their decimal string); null when absent.
    pub msg_id: Option<String>,
    pub recalled: String,
    #[schema(required = false)]
    pub chattype: String,
    #[schema(required = false)]
    pub from: String,
    #[schema(required = false)]
    pub to: String,
}

#[derive(ToSchema, Serialize)]
pub struct BatchRecallData {
    pub msgs: Vec<BatchRecalled>,
}

#[derive(ToSchema, Serialize)]
pub struct BatchRecallResponse {
    #[serde(flatten)]
    pub envelope: Envelope,
    pub data: BatchRecallData,
}

// --- chat files ---------------------------------------------------------------------------

/// The multipart form: one part named `file`; other parts are ignored.
#[derive(ToSchema)]
pub struct Upload {
    #[schema(value_type = String, format = Binary)]
    pub file: Vec<u8>,
}

#[derive(ToSchema, Serialize)]
pub struct ChatFile {
    #[schema(format = "uuid")]
    pub uuid: String,
    #[serde(rename = "type")]
    pub entity_type: ChatFileType,
    /// Needed to download a restricted file (`share-secret` header or query).
    #[serde(rename = "share-secret")]
    pub share_secret: String,
}

#[derive(ToSchema, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ChatFileType {
    Chatfile,
}

#[derive(ToSchema, Serialize)]
pub struct UploadResponse {
    #[serde(flatten)]
    pub envelope: Envelope,
    pub entities: Vec<ChatFile>,
}

// --- health -------------------------------------------------------------------------------

#[derive(ToSchema, Serialize)]
pub struct Health {
    /// `ok`.
    pub status: String,
    /// MSYNC sessions on this node.
    pub sessions: u64,
    /// Callbacks and pushes waiting to be sent, store-wide, read about once a second:
    /// `due`, `scheduled` (backoff, ban), `leased` (being sent), `oldest_due_ms` (age of the
    /// oldest due entry), `dropped_full` (entries this node did not write because their
    /// app's outbox was full).
    #[schema(value_type = Object)]
    pub outbox: serde_json::Value,
}

/// `/ready`: whether this node should get traffic, and why not.
#[derive(ToSchema, Serialize)]
pub struct Readiness {
    /// `ready` or `not_ready`.
    pub status: String,
    /// `ok` or `unreachable`.
    pub store: String,
    /// `none` (a single node), `connected` or `disconnected`.
    pub nats: String,
    pub node_id: u64,
    /// `none` (embedded store), `ok` or `lost`.
    pub lease: String,
}

// --- schemas built by hand ----------------------------------------------------------------

/// A JSON number, or a string holding one (Easemob's examples send both).
fn number_schema() -> Schema {
    OneOfBuilder::new()
        .item(ObjectBuilder::new().schema_type(Type::Number))
        .item(ObjectBuilder::new().schema_type(Type::String).pattern(Some(r"^\s*-?[0-9]+(\.[0-9]+)?\s*$")))
        .into()
}

/// Whole seconds: a non-negative integer, or a string holding one.
fn seconds_schema() -> Schema {
    OneOfBuilder::new()
        .item(ObjectBuilder::new().schema_type(Type::Integer).minimum(Some(0)))
        .item(ObjectBuilder::new().schema_type(Type::String).pattern(Some(r"^\s*[0-9]+\s*$")))
        .into()
}

/// An hour of the day, as a number or a string.
fn hour_schema() -> Schema {
    OneOfBuilder::new()
        .item(ObjectBuilder::new().schema_type(Type::Integer).minimum(Some(0)))
        .item(ObjectBuilder::new().schema_type(Type::String))
        .into()
}

/// 1–600 non-empty recipient ids.
fn recipients_schema() -> Schema {
    ArrayBuilder::new()
        .items(ObjectBuilder::new().schema_type(Type::String).min_length(Some(1)))
        .min_items(Some(1))
        .max_items(Some(600))
        .into()
}

/// A message id: a decimal string, or a number.
fn id_schema() -> Schema {
    OneOfBuilder::new()
        .item(ObjectBuilder::new().schema_type(Type::String).min_length(Some(1)))
        .item(ObjectBuilder::new().schema_type(Type::Integer).minimum(Some(0)))
        .into()
}
