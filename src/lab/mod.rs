//! The lab: throwaway network-namespace topologies to watch and measure
//! failover (written by the lab helper).
