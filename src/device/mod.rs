//! Reader profiles, transports, report reassembly (framer), hot-plug.
