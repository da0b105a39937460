//! Quiet hours and victims' safe time windows, in local time (Europe/London by default).
