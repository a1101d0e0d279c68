#!/bin/sh
#
# rcbsd-alert: mail every rcbsd-failover alert that syslogd(8) pipes to it
# (contrib/examples/syslog.conf.d/rcbsd-failover.conf).
#
# Install as /usr/local/libexec/rcbsd-alert, mode 0755.  syslogd starts it
# once and writes one line per message on its standard input; it keeps
# reading until syslogd closes the pipe (on SIGHUP), and syslogd starts it
# again on the next alert.  Each line looks like
#
#   Nov 25 17:45:47 node1 rcbsd-failover[4242]: event=runbook_failed runbook=promote step="mount /store" ...
#
# Environment: RCBSD_ALERT_TO (default "root").

to="${RCBSD_ALERT_TO:-root}"

while IFS= read -r line; do
	# The event name, for the subject: the word after "event=".
	case "${line}" in
	*event=*)
		event=${line#*event=}
		event=${event%% *}
		;;
	*)
		event="message"
		;;
	esac
	printf '%s\n' "${line}" |
	    /usr/bin/mail -s "rcbsd-failover alert on $(hostname): ${event}" "${to}"
done
