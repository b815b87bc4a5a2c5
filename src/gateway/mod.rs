//! The Customer record, the OnePay HTTP client, tolerant response parsing, the simulator.
