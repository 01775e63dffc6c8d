//! Several real `impressox` processes on one real Redis share the market rules
//! (`market::cluster`): the alerts of three hosts equal those of one host exactly, and
//! stay exact when a host is killed, a host is added, or Redis restarts mid-run; the
//! lease scripts and the fenced commit on their own.

mod feed;
mod hosts;
mod leases;
mod scenarios;
