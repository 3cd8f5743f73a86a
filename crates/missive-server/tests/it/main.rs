//! Integration tests: the real server on 127.0.0.1:0 with a fresh data directory, driven
//! over HTTP and WebSocket. One test binary (modules below) so the server links once.

mod auth_matrix;
mod callbacks;
mod cluster;
mod common;
mod durability;
mod faults;
mod files;
mod gateway;
mod groups;
mod history;
mod hostile;
mod idempotency;
mod logs;
mod openapi;
mod operations;
mod presend;
mod push;
mod receiver;
mod rest_limits;
mod rest_messages;
mod rest_smoke;
mod rest_tokens;
mod rest_users;
mod sdk;
mod sdk5;
mod sdk_agora;
mod sdk_history;
mod telemetry;
mod torture;
mod uikit;
mod ws_delivery;
