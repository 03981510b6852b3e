//! Team administration: change role, remove a teammate, owner transfer.

#[allow(unused_imports)]
use crate::*;
