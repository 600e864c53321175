#!/usr/bin/env bash
# The iproute2 baselines for `make bench`: the same kernel work netagent does
# for 200 networks (namespace, bridge, VXLAN created on the underlay and
# moved in, 2 veth endpoints each with IP/MAC/MTU), 5,000 remote endpoints
# (FDB + neighbour) in network 0, then deletion of everything.
#   iproute2.sh script HOSTNS PREFIX NNETS NREMOTE   one ip/bridge process per object
#   iproute2.sh batch  HOSTNS PREFIX NNETS NREMOTE   ip -batch / bridge -batch files
set -euo pipefail
mode=$1 host=$2 p=$3 nnets=$4 nremote=$5
uif=$(ip -n "$host" route show default | awk '{print $5; exit}')
uaddr=$(ip -n "$host" -4 -o addr show dev "$uif" | awk '{split($4,a,"/"); print a[1]; exit}')
H="ip -n $host"
subnet_plen() { [ "$1" -eq 0 ] && echo 16 || echo 24; }
ep_ip() { [ "$1" -eq 0 ] && echo "198.19.0.$((10 + $2))" || echo "198.18.$1.$((10 + $2))"; }
mac_of() { printf '02:84:%02x:%02x:%02x:%02x' $(echo "$1" | tr . ' '); }
rem_ip() { local a=$((100 + $1)); echo "198.19.$((a / 256)).$((a % 256))"; }
rem_mac() { local a=$((100 + $1)); printf '02:84:c6:13:%02x:%02x' $((a / 256)) $((a % 256)); }

script_mode() {
	for ((i = 0; i < nnets; i++)); do
		ns=${p}n$i
		ip netns add "$ns"
		ip -n "$ns" link set lo up
		ip -n "$ns" link add br0 mtu 1450 type bridge
		$H link add "${p}v$i" mtu 1450 type vxlan id $((1000 + i)) dstport 4789 local "$uaddr" dev "$uif" nolearning proxy
		$H link set "${p}v$i" netns "$ns"
		ip -n "$ns" link set "${p}v$i" name vxlan0
		ip -n "$ns" link set vxlan0 master br0
		bridge -n "$ns" link set dev vxlan0 neigh_suppress on learning off
		ip -n "$ns" link set br0 up
		ip -n "$ns" link set vxlan0 up
		for e in 0 1; do
			epns=${p}e$i-$e
			ip -n "$ns" link add "ve$e" mtu 1450 type veth peer name "p$e" netns "$epns"
			ip -n "$ns" link set "ve$e" master br0
			ip -n "$ns" link set "ve$e" up
			ipa=$(ep_ip "$i" "$e")
			ip -n "$epns" link set "p$e" name eth0
			ip -n "$epns" link set eth0 address "$(mac_of "$ipa")"
			ip -n "$epns" addr add "$ipa/$(subnet_plen "$i")" dev eth0
			ip -n "$epns" link set eth0 up
		done
	done
	for ((k = 0; k < nremote; k++)); do
		bridge -n "${p}n0" fdb replace "$(rem_mac "$k")" dev vxlan0 dst "192.0.2.$((20 + k % 200))" self permanent
		ip -n "${p}n0" neigh replace "$(rem_ip "$k")" lladdr "$(rem_mac "$k")" dev vxlan0 nud permanent
	done
	for ((i = 0; i < nnets; i++)); do
		ip -n "${p}n$i" link del vxlan0
		for e in 0 1; do ip -n "${p}n$i" link del "ve$e"; done
		ip netns del "${p}n$i"
	done
}

batch_mode() {
	local d
	d=$(mktemp -d)
	# 1 process: every namespace, and every VXLAN created on the underlay
	# and moved into its network's namespace in the same request.
	for ((i = 0; i < nnets; i++)); do echo "netns add ${p}n$i"; done >"$d/netns"
	ip -batch "$d/netns"
	for ((i = 0; i < nnets; i++)); do
		echo "link add vxlan0 netns ${p}n$i mtu 1450 type vxlan id $((1000 + i)) dstport 4789 local $uaddr dev $uif nolearning proxy"
	done >"$d/vx"
	$H -batch "$d/vx"
	# 1 ip + 1 bridge process per network namespace; veth peers go straight
	# into the endpoint namespaces.
	for ((i = 0; i < nnets; i++)); do
		ns=${p}n$i
		{
			echo "link set lo up"
			echo "link add br0 mtu 1450 type bridge"
			echo "link set vxlan0 master br0"
			for e in 0 1; do
				ipa=$(ep_ip "$i" "$e")
				echo "link add ve$e mtu 1450 type veth peer name eth0 netns ${p}e$i-$e address $(mac_of "$ipa")"
				echo "link set ve$e master br0"
				echo "link set ve$e up"
			done
			echo "link set br0 up"
			echo "link set vxlan0 up"
		} >"$d/n$i"
		ip -n "$ns" -batch "$d/n$i"
		echo "link set dev vxlan0 neigh_suppress on learning off" | bridge -n "$ns" -batch -
	done
	# 1 process per endpoint namespace: addresses are per-namespace objects.
	for ((i = 0; i < nnets; i++)); do
		for e in 0 1; do
			printf 'addr add %s/%s dev eth0\nlink set eth0 up\n' "$(ep_ip "$i" "$e")" "$(subnet_plen "$i")" |
				ip -n "${p}e$i-$e" -batch -
		done
	done
	if ((nremote)); then
		for ((k = 0; k < nremote; k++)); do
			echo "fdb replace $(rem_mac "$k") dev vxlan0 dst 192.0.2.$((20 + k % 200)) self permanent"
		done >"$d/fdb"
		for ((k = 0; k < nremote; k++)); do
			echo "neigh replace $(rem_ip "$k") lladdr $(rem_mac "$k") dev vxlan0 nud permanent"
		done >"$d/neigh"
		bridge -n "${p}n0" -batch "$d/fdb"
		ip -n "${p}n0" -batch "$d/neigh"
	fi
	# Deletion: the VXLAN first (it holds the VNI and its UDP port in the
	# underlay namespace), then the namespaces.
	for ((i = 0; i < nnets; i++)); do
		printf 'link del vxlan0\nlink del ve0\nlink del ve1\n' | ip -n "${p}n$i" -batch -
	done
	for ((i = 0; i < nnets; i++)); do echo "netns del ${p}n$i"; done >"$d/del"
	ip -batch "$d/del"
	rm -rf "$d"
}

case $mode in
script) script_mode ;;
batch) batch_mode ;;
*) echo "usage: $0 script|batch HOSTNS PREFIX NNETS NREMOTE" >&2; exit 2 ;;
esac
