#!/bin/sh
#
# rcbsd-notify-mail: a [notify] hook for rcbsd-failover that mails every
# state change.  Install as /usr/local/libexec/rcbsd-notify-mail, mode
# 0755, and set in /usr/local/etc/rcbsd-failover.toml:
#
#   [notify]
#   command = ["/usr/local/libexec/rcbsd-notify-mail", "root"]
#   timeout = "10s"
#
# The agent runs it without a shell, as root, in "/", with standard input,
# output and error on /dev/null, and kills it after the timeout; a failure
# is logged as notify_failed and changes nothing else.  The event is in the
# environment:
#
#   RCBSD_EVENT     state_change
#   RCBSD_FROM      initialize, backup, master or fault
#   RCBSD_TO        initialize, backup, master or fault
#   RCBSD_REASON    startup, master_down, master_resigned, resigned, ...
#   RCBSD_NODE      node.name
#   RCBSD_PRIORITY  the effective priority
#   RCBSD_MASTER    the master's address, or "none"
#   RCBSD_VIPS      the virtual IPs, comma-separated
#
# Usage: rcbsd-notify-mail [recipient ...]   (default: root)

[ $# -gt 0 ] || set -- root

subject="rcbsd-failover: ${RCBSD_NODE:-?} ${RCBSD_FROM:-?} -> ${RCBSD_TO:-?} (${RCBSD_REASON:-?})"

# mail(1) hands the message to the local MTA and returns at once.
/usr/bin/mail -s "${subject}" "$@" <<MESSAGE
Node:      ${RCBSD_NODE:-?}
Event:     ${RCBSD_EVENT:-?}
From:      ${RCBSD_FROM:-?}
To:        ${RCBSD_TO:-?}
Reason:    ${RCBSD_REASON:-?}
Priority:  ${RCBSD_PRIORITY:-?}
Master:    ${RCBSD_MASTER:-?}
VIPs:      ${RCBSD_VIPS:-?}
Time:      $(date -u '+%Y-%m-%dT%H:%M:%SZ')

Check it with: rcbsd-failover status
MESSAGE
