//! Drains the queue through a `Deliver` (the gateway client).
