//! Devices and their backends. For now: the pcap file format, for the `--pcap` tap and the
//! `xtcp decode` diagnostic.

pub mod pcap;
