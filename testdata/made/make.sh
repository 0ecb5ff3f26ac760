#!/bin/sh
# make.sh: makes the colour, depth, alpha and format cases in this folder from
# ../libjpeg-turbo/testorig.jpg (an sRGB photograph, 227x149) with tools from Debian
# packages: libvips-tools (vips), imagemagick (convert), libjpeg-turbo-progs (cjpeg, djpeg),
# icc-profiles-free
# (compatibleWithAdobeRGB1998.icc) and libgs-common (ghostscript's default_cmyk.icc).
# The results are committed; run this again only to remake them.
set -eu
cd "$(dirname "$0")"
src=../libjpeg-turbo/testorig.jpg
icc=/usr/share/color/icc
for t in vips convert; do command -v $t >/dev/null || { echo "make.sh: needs $t" >&2; exit 1; }; done

# CMYK with an embedded CMYK profile (ghostscript's), as Photoshop writes it: Adobe, inverted
vips icc_export "$src" cmyk-tagged.jpg --output-profile "$icc/ghostscript/default_cmyk.icc"
# CMYK without a profile: made with libvips' built-in CMYK profile, which is what thumbr
# assumes for untagged CMYK, then stripped
vips icc_export "$src" /tmp/cmyk-$$.v --output-profile cmyk
vips jpegsave /tmp/cmyk-$$.v cmyk-untagged.jpg --strip
rm -f /tmp/cmyk-$$.v
# YCCK: ImageMagick rewrites a CMYK JPEG as YCCK (Adobe transform 2), keeping the profile
convert cmyk-tagged.jpg ycck.jpg
# Adobe RGB (1998)-compatible, tagged
vips icc_export "$src" adobergb.jpg --output-profile "$icc/compatibleWithAdobeRGB1998.icc"
# grey
vips colourspace "$src" grey.jpg b-w
# 16 bits per sample
vips colourspace "$src" rgb16.png rgb16
vips colourspace "$src" /tmp/rgb16-$$.v rgb16
vips tiffsave /tmp/rgb16-$$.v rgb16-tiff.tif
rm -f /tmp/rgb16-$$.v
# alpha: opaque at the top, transparent at the bottom
convert "$src" \( -size 227x149 gradient:white-black \) -alpha off -compose copy_opacity \
	-composite alpha.png
# grey+alpha through a libvips loader (TIFF): top half black | white, opaque; bottom half
# grey 100 at alpha 200 (onto white: 133)
convert \( -size 32x24 xc:'gray(0)' -size 32x24 xc:'gray(255)' +append \
	-size 64x24 xc:'gray(100)' -append \) \
	\( -size 64x24 xc:'gray(255)' -size 64x24 xc:'gray(200)' -append \) \
	-alpha off -compose CopyOpacity -composite -colorspace Gray -type GrayscaleAlpha \
	-define tiff:alpha=unassociated -depth 8 -compress none grey-alpha.tif
# other formats libvips loads
for ext in webp tif gif heic avif; do vips copy "$src" "format-$ext.$ext"; done
# JPEG codings: restart markers every 2 MCU rows, progressive, arithmetic (libjpeg-turbo-progs)
if command -v cjpeg >/dev/null; then
	djpeg -ppm "$src" > /tmp/src-$$.ppm
	cjpeg -restart 2 /tmp/src-$$.ppm > restart.jpg
	cjpeg -progressive /tmp/src-$$.ppm > progressive.jpg
	cjpeg -arithmetic /tmp/src-$$.ppm > arithmetic.jpg
	rm -f /tmp/src-$$.ppm
fi
# a file cut short, and one with a JPEG header and nothing after it
head -c 3000 "$src" > truncated.jpg
ls -l
