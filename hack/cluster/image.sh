# shellcheck shell=bash disable=SC2154
# Images the local cluster builds itself, sourced by cluster.sh (and
# smoke.sh): docker-archive tarballs that `criserver image import` loads
# into each node, so that no registry is needed.

# docker_archive OUT NAME ROOT CONFIG writes OUT, a docker-archive of one
# layer holding directory ROOT, tagged NAME; CONFIG is the JSON members of
# the image config's "config" object (e.g. '"Entrypoint":["/x"]'). Files
# are root's, dated 0 and in name order, so the same ROOT gives the same
# image.
docker_archive() {
	local out=$1 name=$2 root=$3 config=$4
	local work
	work=$(mktemp -d "$(dirname "$out")/.archive.XXXXXX")
	tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 -C "$root" -cf "$work/layer.tar" .
	local diff cfg
	diff=$(sha256sum "$work/layer.tar" | cut -d' ' -f1)
	mkdir "$work/$diff"
	mv "$work/layer.tar" "$work/$diff/layer.tar"
	printf '{"architecture":"amd64","os":"linux","config":{%s},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]}}\n' \
		"$config" "$diff" >"$work/config.json"
	cfg=$(sha256sum "$work/config.json" | cut -d' ' -f1)
	mv "$work/config.json" "$work/$cfg.json"
	printf '[{"Config":"%s.json","RepoTags":["%s"],"Layers":["%s/layer.tar"]}]\n' "$cfg" "$name" "$diff" >"$work/manifest.json"
	tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 -C "$work" -cf "$out.tmp" manifest.json "$cfg.json" "$diff"
	mv "$out.tmp" "$out"
	rm -rf "$work"
}

# build_busybox_image OUT NAME writes a docker-archive of Debian's
# busybox-static with a link for each applet, for tests and checks.
build_busybox_image() {
	local out=$1 name=$2 root a
	root=$(mktemp -d "$(dirname "$out")/.busybox.XXXXXX")
	mkdir "$root/bin"
	install -m 0755 /bin/busybox "$root/bin/busybox"
	for a in $(/bin/busybox --list); do
		[[ $a == busybox ]] || ln -s busybox "$root/bin/$a"
	done
	docker_archive "$out" "$name" "$root" '"Env":["PATH=/bin"],"Cmd":["sh"]'
	rm -rf "$root"
}
