#!/usr/bin/env bash
# Real recorded music under free licences, from Debian packages, as training audio.
#   scripts/real_music.sh OUT
# Downloads (apt-get download: no root, nothing installed) and unpacks:
#   wesnoth-1.16-music  41 tracks, ~128 min, orchestral (GPL-2+)
#   widelands-data      31 tracks, ~97 min, orchestral and medieval (GPL-2+; ingame_24-26 CC-BY-SA-3.0)
#   openclonk-data       8 tracks, ~26 min, house, reggae, rock, ambient, orchestral (CC-BY 3.0 / CC0)
#   pushover-data       10 tracks, ~31 min, themed (Aztec, Japanese, Greek, electro, ...) (GPL-3+)
# and copies their Ogg Vorbis music into OUT/<package>/, with each package's copyright file.
# Tracks of the held-out evaluation set (scripts/real_eval_set.py) are left out.
set -euo pipefail
out=${1:?usage: scripts/real_music.sh OUT}
HELD_OUT=(the_dangerous_symphony.ogg)
declare -A MUSIC_DIR=(
    [wesnoth-1.16-music]=usr/share/games/wesnoth/1.16/data/core/music
    [widelands-data]=usr/share/games/widelands/data/music
    [openclonk-data]=usr/share/games/openclonk/Music.ocg
    [pushover-data]=usr/share/pushover/themes
)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$out"
for pkg in "${!MUSIC_DIR[@]}"; do
    dest="$out/$pkg"
    if [[ -f "$dest/.complete" ]]; then
        echo "[real-music] $pkg: already in $dest"
        continue
    fi
    echo "[real-music] downloading $pkg"
    (cd "$tmp" && apt-get download -qq "$pkg")
    deb=$(ls "$tmp"/"${pkg}"_*.deb)
    mkdir -p "$tmp/$pkg"
    dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$tmp/$pkg" --wildcards "./${MUSIC_DIR[$pkg]}/*" "./usr/share/doc/$pkg/copyright"
    rm -f "$deb"
    mkdir -p "$dest"
    count=0
    for f in "$tmp/$pkg/${MUSIC_DIR[$pkg]}"/*.ogg; do
        name=$(basename "$f")
        if [[ " ${HELD_OUT[*]} " == *" $name "* ]]; then
            continue
        fi
        cp "$f" "$dest/"
        count=$((count + 1))
    done
    cp "$tmp/$pkg/usr/share/doc/$pkg/copyright" "$dest/COPYRIGHT"
    touch "$dest/.complete"
    rm -rf "${tmp:?}/$pkg"
    echo "[real-music] $pkg: $count tracks in $dest"
done
