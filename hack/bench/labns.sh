# Sourced by hack/bench/lab and hack/bench/soak: the benchmark's throwaway
# namespace trio and the cleanup of everything the script started. Only the
# names utmb-c (client, 198.18.20.2), utmb-r (router) and utmb-s (server,
# 198.18.21.2) and the processes in $pids are ever touched. Dev-only.

NS_C=utmb-c NS_R=utmb-r NS_S=utmb-s
CLIENT_IP=198.18.20.2 SERVER_IP=198.18.21.2
pids=()

[ "$(id -u)" -eq 0 ] || { echo "$0: needs root (network namespaces, iptables, NFQUEUE): run it with sudo" >&2; exit 1; }

in_c() { ip netns exec "$NS_C" "$@"; }
in_r() { ip netns exec "$NS_R" "$@"; }
in_s() { ip netns exec "$NS_S" "$@"; }

# bg NS CMD...: start CMD in namespace NS in the background and remember
# it for cleanup. ip netns exec execs CMD, so $! is CMD's own pid (the one
# to signal, profile and sample).
bg() {
	local ns=$1
	shift
	ip netns exec "$ns" "$@" &
	pids+=($!)
}

# stop PID: end one process this script started and wait for it.
stop() {
	kill -TERM "$1" 2>/dev/null || true
	wait "$1" 2>/dev/null || true
}

cleanup() {
	local p
	for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
	for ns in "$NS_C" "$NS_R" "$NS_S"; do ip netns del "$ns" 2>/dev/null || true; done
	[ -n "${tmp:-}" ] && rm -rf "$tmp"
}

need_pkg() { # need_pkg CMD-OR-FILE PACKAGE: apt-get install PACKAGE when missing
	if [ ! -e "$1" ] && ! command -v "$1" >/dev/null; then
		echo "installing $2"
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >/dev/null
	fi
}

# lab_up: client -- router -- server, forwarding in the router.
lab_up() {
	for ns in "$NS_C" "$NS_R" "$NS_S"; do
		ip netns del "$ns" 2>/dev/null || true # left over from a killed run of this script
		ip netns add "$ns"
		ip -n "$ns" link set lo up
	done
	ip link add utmb-c0 netns "$NS_C" type veth peer name utmb-rc netns "$NS_R"
	ip link add utmb-s0 netns "$NS_S" type veth peer name utmb-rs netns "$NS_R"
	ip -n "$NS_C" addr add "$CLIENT_IP/24" dev utmb-c0
	ip -n "$NS_R" addr add 198.18.20.1/24 dev utmb-rc
	ip -n "$NS_R" addr add 198.18.21.1/24 dev utmb-rs
	ip -n "$NS_S" addr add "$SERVER_IP/24" dev utmb-s0
	for l in "$NS_C utmb-c0" "$NS_R utmb-rc" "$NS_R utmb-rs" "$NS_S utmb-s0"; do
		set -- $l
		ip -n "$1" link set "$2" up
	done
	ip -n "$NS_C" route add default via 198.18.20.1
	ip -n "$NS_S" route add default via 198.18.21.1
	in_r sysctl -qw net.ipv4.ip_forward=1
	# Many short flows: reuse client ports in TIME_WAIT, use the whole range.
	in_c sysctl -qw net.ipv4.tcp_tw_reuse=1 net.ipv4.ip_local_port_range="1024 65000"
}

# wait_tcp PORT: until the client reaches PORT on the server (or 10 s).
wait_tcp() {
	local i
	for i in $(seq 100); do
		in_c timeout 1 bash -c "exec 3<>/dev/tcp/$SERVER_IP/$1" 2>/dev/null && return 0
		sleep 0.1
	done
	echo "$0: the client cannot reach $SERVER_IP:$1 through the router" >&2
	return 1
}

# steer_on QUEUES: send everything the router forwards to NFQUEUE queue
# QUEUES ("0"), or balance flows over the range ("0:1"); fail open when
# no consumer is bound.
steer_on() {
	case $1 in
	*:*) in_r iptables -A FORWARD -j NFQUEUE --queue-balance "$1" --queue-bypass ;;
	*) in_r iptables -A FORWARD -j NFQUEUE --queue-num "$1" --queue-bypass ;;
	esac
}
steer_off() { in_r iptables -F FORWARD; }
steered() { in_r iptables -L FORWARD -v -x -n | awk '$3 == "NFQUEUE" { print $1; exit }'; }

# wait_bound QUEUES: until a consumer holds every queue of QUEUES ("0" or
# "0:1") in the router (or 60 s).
wait_bound() {
	local i lo=${1%:*} hi=${1#*:}
	for i in $(seq 600); do
		in_r awk -v lo="$lo" -v hi="$hi" '$1 >= lo && $1 <= hi && $2 != 0 { n++ } END { exit n != hi - lo + 1 }' \
			/proc/net/netfilter/nfnetlink_queue 2>/dev/null && return 0
		sleep 0.1
	done
	echo "$0: no consumer bound queue(s) $1 within 60 s" >&2
	return 1
}

# metric URL NAME: the sum of a Prometheus counter family, from the router.
metric() {
	in_r bash -c 'exec 3<>/dev/tcp/${1%:*}/${1##*:} && printf "GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n" >&3 && cat <&3' _ "$1" |
		awk -v n="$2" '$1 == n || index($1, n "{") == 1 { s += $2 } END { printf "%.0f\n", s }'
}

# wait_metrics ADDR: until the metrics endpoint at ADDR in the router
# answers (or 60 s).
wait_metrics() {
	local i
	for i in $(seq 600); do
		in_r timeout 1 bash -c 'exec 3<>/dev/tcp/${1%:*}/${1##*:}' _ "$1" 2>/dev/null && return 0
		sleep 0.1
	done
	echo "$0: no metrics at $1 within 60 s" >&2
	return 1
}
