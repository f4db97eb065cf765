# Sourced by images/setup-host.sh: downloads packages of another Debian release (trixie, unstable) through a private
# apt configuration per release under $cache_dir/apt-<release>. The system's sources, lists and dpkg database are
# never touched, and nothing is installed: callers get the .deb's path and extract or install it themselves.
#
# Functions that print a result print only that on stdout (their messages go to stderr).
# Needs: $cache_dir, die(), say(), make_download_dir(), and the bookworm sources of the system (the mirror is taken
# from them).

debian_keyring=/usr/share/keyrings/debian-archive-keyring.gpg
declare -A debian_release_updated=()

# The Debian mirror the system already uses (read from apt's own view of its sources).
debian_system_mirror() {
    local codename
    codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
    [ -n "$codename" ] || die "VERSION_CODENAME missing from /etc/os-release"
    apt-get indextargets --format '$(RELEASE) $(IDENTIFIER) $(REPO_URI)' 2>/dev/null \
        | awk -v rel="$codename" '$1 == rel && $2 == "Packages" { print $3; exit }'
}

# Sets the array debian_apt to the apt options of RELEASE's private configuration, creating it when missing.
debian_apt_for() {
    local release=$1 dir=$cache_dir/apt-$1 mirror
    if [ ! -f "$dir/sources.list" ]; then
        mirror=$(debian_system_mirror)
        [ -n "$mirror" ] || die "no Debian apt source found (apt-get indextargets); cannot derive the mirror for $release"
        [ -r "$debian_keyring" ] || die "$debian_keyring missing (package debian-archive-keyring)"
        mkdir -p "$dir/lists/partial" "$dir/cache/archives/partial"
        printf 'deb [signed-by=%s] %s %s main\n' "$debian_keyring" "$mirror" "$release" > "$dir/sources.list"
    fi
    # An empty dpkg status: the system's installed versions (bookworm's) must not become the candidates.
    [ -f "$dir/status" ] || : > "$dir/status"
    make_download_dir "$dir/debs"
    debian_apt=(-o "Dir::Etc::sourcelist=$dir/sources.list" -o Dir::Etc::sourceparts=-
                -o "Dir::State::Lists=$dir/lists" -o "Dir::State::status=$dir/status" -o "Dir::Cache=$dir/cache"
                -o Acquire::IndexTargets::deb::DEP-11::DefaultEnabled=false
                -o Acquire::IndexTargets::deb::DEP-11-icons::DefaultEnabled=false
                -o Acquire::IndexTargets::deb::DEP-11-icons-small::DefaultEnabled=false
                -o Acquire::Languages=none)
}

# Fetches RELEASE's package index, once per run of the caller.
debian_update() {
    local release=$1
    [ -n "${debian_release_updated[$release]:-}" ] && return 0
    debian_apt_for "$release"
    say "apt: fetching the $release package index (private config in $cache_dir/apt-$release)" >&2
    apt-get "${debian_apt[@]}" update -qq \
        || die "apt-get update of the private $release sources ($cache_dir/apt-$release/sources.list) failed: check access to the Debian mirror"
    debian_release_updated[$release]=yes
}

# The candidate version of PACKAGE in RELEASE (empty when the index does not know it).
debian_candidate() {
    debian_apt_for "$1"
    apt-cache "${debian_apt[@]}" policy "$2" 2>/dev/null | awk '/Candidate:/ { if ($2 != "(none)") print $2; exit }'
}

# apt-get download of PACKAGE=VERSION into RELEASE's debs directory (its output to stderr).
debian_fetch() {
    (cd "$cache_dir/apt-$1/debs" && apt-get "${debian_apt[@]}" download -qq "$2=$3") >&2
}

# Downloads PACKAGE of RELEASE into $cache_dir/apt-RELEASE/debs (verified by apt against the signed index) and prints
# the .deb's path. An old copy of the same package is replaced; the index is fetched only when needed.
debian_download() {
    local release=$1 package=$2 version deb
    debian_apt_for "$release"
    version=$(debian_candidate "$release" "$package")
    if [ -z "$version" ]; then
        debian_update "$release"
        version=$(debian_candidate "$release" "$package")
    fi
    [ -n "$version" ] || die "package $package is not in Debian $release"
    deb=$cache_dir/apt-$release/debs/${package}_${version//:/%3a}_amd64.deb
    [ -f "$deb" ] || deb=$cache_dir/apt-$release/debs/${package}_${version//:/%3a}_all.deb
    if [ ! -f "$deb" ]; then
        rm -f "$cache_dir/apt-$release/debs/${package}"_*.deb
        if ! debian_fetch "$release" "$package" "$version"; then
            # a stale index can name a version the mirror no longer has: fetch the index, then try once more
            debian_update "$release"
            version=$(debian_candidate "$release" "$package")
            debian_fetch "$release" "$package" "$version" || die "apt-get download $package=$version from Debian $release failed"
        fi
        deb=$(ls "$cache_dir/apt-$release/debs/${package}_${version//:/%3a}"_*.deb 2>/dev/null | head -n1)
        [ -f "$deb" ] || die "apt-get download $package=$version from Debian $release left no .deb"
        chown root:root "$deb"
    fi
    printf '%s\n' "$deb"
}
