#![no_main]
//! Any bytes: the checks of `lbd::import::fuzz::vrrp` (no panic, what the
//! decoder accepts encodes back to the same message; see there).

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    lbd::import::fuzz::vrrp(data);
});
