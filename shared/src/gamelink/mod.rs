//! GameLink: the WebSocket protocol through which a game (Muxy's C++,
//! C#/Unity and Unreal SDKs) logs in with a PIN and then reads and writes its
//! channel's state, runs polls and receives updates. The wire format is the
//! one the library games ship defines (`muxy/gamelink-cpp`, `schema/*.h`):
//! medkit follows it exactly, field names included.
//!
//! The model is pure here: [`envelope`] (frames in and out, error replies),
//! [`authentication`] (PIN and refresh-token logins), [`session`] (a game's
//! connection and its login window), [`state`] (the state and config
//! verbs' targets), [`push`] (the updates subscribed games receive),
//! [`poll`] (polls, their rules and status), [`matches`] (a server's
//! matches across channels and their polls), [`datastream`]. The WebSocket
//! handlers (edge, `functions/socket/src/gamelink/`) parse a frame,
//! dispatch on its action and target, and answer every request exactly
//! once; `game_polls` and `stores` are the services they share with REST.

pub mod authentication;
pub mod datastream;
pub mod envelope;
pub mod matches;
pub mod poll;
pub mod purchases;
pub mod push;
pub mod session;
pub mod state;
