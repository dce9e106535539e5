"""Training photos of DESIGN.md (Data): fetched from Debian packages, downsampled, cut into patches.

The photos are artwork of Debian packages under various free licences (train/README.md), so they
are never committed: `apt-get download` puts each package into the cache folder (no root
install), the photos are read out of the .deb in Python (plain image files, images inside Qt
resource files, images inside Eet archives) and `prepare` writes area-downsampled copies (2x, 3x
and 4x; every source is lossy or camera-processed, and downsampling removes most of the
compression artefacts) as PNG.

`SOURCES` is the one table of what is used: per package where its photos are, how they are
stored, which are kept and which were looked at and left out, with why. Everything is listed by
name, so the set is the same on every machine; a kept photo that is missing, or a container that
does not parse, stops with a HiercodecError rather than training on a smaller set.

`python -m hiercodec.train.data` prepares the set (once) and prints its size per package.
"""

from __future__ import annotations

import io
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np
from PIL import Image
from tqdm import tqdm

from hiercodec.cache import cache_dir
from hiercodec.errors import HiercodecError
from hiercodec.fetch import deb_members, run
from hiercodec.train import eet
from hiercodec.train.rcc import read_rcc

DOWNSAMPLE_FACTORS = (2, 3, 4)
MIN_SIDE = 300  # every kept photo is at least this big on its short side; smaller means the archive changed


@dataclass(frozen=True)
class Source:
    """The photos of one Debian package.

    kind: "file" (members are image files), "rcc" (each kept name is "<rcc file>/<path inside
    it>", the rcc files are `folder`<rcc file>.rcc and paths inside start with `inner`) or "edj"
    (each kept name is an Eet archive in `folder`; its largest image is the photo).
    prefix: the prepared files are "<prefix>-<name>-x<f>.png"; None keeps the names the first
    23 photos have had from the start (plasma "<wallpaper>-<size>", mate "<file stem>").
    """

    package: str
    kind: str
    folder: str
    keep: tuple[str, ...]  # stored sorted
    excluded: dict[str, str] = field(default_factory=dict)  # looked at and left out: name -> why
    prefix: str | None = None
    inner: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "keep", tuple(sorted(self.keep)))  # one order on every machine

    def stem(self, name: str) -> str:
        path = PurePosixPath(name)
        if self.prefix is None:
            return f"{path.parts[0]}-{path.stem}" if "contents" in path.parts else path.stem
        parts = [*path.parent.parts, path.stem]
        return "-".join([self.prefix, *(p for p in parts if p != "resource")])


def _names(prefix: str, suffix: str, names: str) -> tuple[str, ...]:
    """prefix + name + suffix for each whitespace-separated name: keeps long lists readable."""
    return tuple(f"{prefix}{name}{suffix}" for name in names.split())


# The 11 photographs of plasma-workspace-wallpapers (the rest are illustrations), at their largest size.
PLASMA_PHOTOS = (
    "BytheWater", "ColdRipple", "ColorfulCups", "DarkestHour", "EveningGlow", "FallenLeaf",
    "Grey", "Kite", "OneStandsOut", "Path", "summer_1am",
)

GCOMPRIS_PHOTOS = (
    *_names("clickgame/resource/", ".webp", "sea1 sea2 sea3 sea4 sea5 sea6"),
    *_names("erase/resource/", ".webp", """
        alpaca bee butterfly calf camels caterpillar chamaeleon cheetah crab dolphin flying_fox gibbon giraffe goat
        gorilla gosling heron horse kingfisher kitten long_nosed_monkey macaque meerkats northern_harrier
        nubian_ibex penguin pika red_panda rhinoceros spoonbills squirrel swans toucan"""),
    *_names("explore_farm_animals/resource/animals/", ".webp", "cat chicken cow dog duck horse owl pig sheep"),
    *_names("explore_monuments/resource/egypt/", ".webp", "bentPyramid greatPyramidOfGiza meidumPyramid redPyramid"),
    *_names("explore_monuments/resource/france/", ".webp", """
        arlesAmphitheater chateaudeChambord chateaudeChenonceau citedeCarcassonne eiffelTower montStMichel
        palaisdesPapes pontduGard reimsCathedral rocamadour"""),
    *_names("explore_monuments/resource/germany/", ".webp", """
        aulaPalatina berlinCathedral brandenburgGate neuschwansteinCastle schwerinPalace trierImperialBaths
        wormsCathedral"""),
    *_names("explore_monuments/resource/india/", ".webp", """
        ajantaCave charminar gatewayofIndia goldenTemple greatStupa hawaMahal konarkSunTemple mysorePalace
        qutubMinar rangGhar victoriaMemorial"""),
    *_names("explore_monuments/resource/usa/", ".webp", """
        cabrillo canyondeChelly castillodeSanMarcos castleClinton fortSumter georgeWashingtonBirthplace
        lincolnMemorial mountRushmore navajo statueofLiberty"""),
    *_names("explore_monuments/resource/wonders/", ".webp",
            "chichenItza christTheRedeemer colosseum greatWallofChina machuPicchu petra tajMahal"),
    *_names("explore_world_animals/resource/animals/", ".webp", """
        bison chameleon crocodile dragon giraffe hedgehog jaguar kangaroo koala lemur moose narwhal panda
        polar_bear scarlet_macaw"""),
    *_names("explore_world_music/resource/music/", ".webp",
            "africa america australia ireland italy japan mexico middleeast orchestra"),
)
GCOMPRIS_EXCLUDED = dict.fromkeys(_names("clickgame/resource/", ".webp", """
    QueenAngel blueking2 butfish cichlid1 cichlid4 collaris discus2 discus3 f00 f01 f02 f03 f04 f05 f06 f07
    f08 f09 f10 f11 f12 f13 manta newf1 shark1 six_barred teeth"""), "drawn fish sprite, transparent cut-out")

ENDLESS_SKY_PHOTOS = _names("", ".jpg", """
    badlands0 badlands1 badlands2 badlands3 badlands4 badlands5 badlands6 badlands7 badlands8 badlands9-harro
    beach0 beach1 beach10-sfiera beach11-harro beach12-harro beach2 beach3 beach4 beach5 beach6 beach7-sfiera
    beach8-sfiera beach9-sfiera
    bwerner0 bwerner1 bwerner2 bwerner3 bwerner4 bwerner5 bwerner6 bwerner7 bwerner8
    canyon0 canyon01 canyon02 canyon03 canyon04 canyon05 canyon1 canyon10-harro canyon2 canyon3 canyon4 canyon5
    canyon6 canyon7 canyon8 canyon9
    city10 city11 city12 city13-sfiera city14-sfiera city15-sfiera city16-sfiera city17-sfiera city18-iridium
    city2 city3 city4 city5 city6 city7 city8 city9
    desert0 desert1 desert10-harro desert2 desert4 desert5 desert6 desert7 desert8-sfiera desert9-sfiera
    dmottl0 dmottl1 dmottl2 dmottl3 dmottl4 dmottl5
    dune0 dune1 dune2 dune3 dune4 dune5 dune6-harro
    fields0 fields1 fields10-sfiera fields11-sfiera fields12-sfiera fields13-sfiera fields2 fields3 fields4
    fields5 fields6 fields7 fields8 fields9
    fog0 fog1 fog2 fog3 fog4 fog5 fog6 fog7
    forest0 forest1 forest2 forest3 forest4 forest5
    hills0 hills1 hills2 hills3 hills5-sfiera hills6-sfiera hills7-harro
    industrial0-iridium
    lava0 lava1 lava2 lava3 lava4 lava5 lava6 lava7-sfiera
    loc0 loc1 loc2
    mfield0 mfield1 mfield2 mfield3 mfield4 mfield5
    mountain0 mountain1 mountain10-sfiera mountain11-sfiera mountain12-sfiera mountain13-sfiera mountain14-sfiera
    mountain15-sfiera mountain16-striker mountain17-harro mountain18-harro mountain19-harro mountain20-harro
    mountain21-harro mountain22-spfld mountain23-spfld mountain24-spfld mountain25-spfld mountain3 mountain4
    mountain5 mountain6 mountain7 mountain8 mountain9
    myrabella0 myrabella1 myrabella2 myrabella3 myrabella4 myrabella5 myrabella6 myrabella7 myrabella8
    nasa0 nasa1 nasa2 nasa3 nasa4 nasa5 nasa6 nasa7
    sea0 sea1 sea10-sfiera sea11-sfiera sea12-sfiera sea13-sfiera sea14-sfiera sea15-harro sea16-harro
    sea17-harro sea2 sea3 sea4 sea5 sea6 sea7 sea8 sea9
    sky0 sky1 sky2 sky3 sky4 sky5 sky7 sky9
    snow0 snow1 snow10 snow10-sfiera snow11-sfiera snow2 snow3 snow4 snow5 snow6 snow7 snow8 snow9
    space0 space1 space2 space3 space4 space5 space6 space7
    station0 station1 station2 station3 station4
    valley0 valley1 valley10-sfiera valley11-harro valley12-harro valley13-harro valley14-harro valley15-harro
    valley2 valley3 valley4 valley5 valley6 valley8
    water0 water1 water10-harro water11-harro water2 water3 water4 water7 water8
""")
ENDLESS_SKY_EXCLUDED = {
    "city0.jpg": "extreme HDR tone mapping (haloes, painted look)",
    "city1.jpg": "extreme HDR tone mapping (haloes, painted look)",
    "desert3.jpg": "composite: orange sky pasted over blue-tinted ground",
    "earthrise.jpg": "composite: the Earth pasted over a lunar horizon",
    "hills4.jpg": "hue-shifted to look alien (teal plants, pink sky)",
    "mountain2.jpg": "colour-inverted to look alien (blue rock, orange sky)",
    "nasa8.jpg": "Jupiter, JunoCam frame with enhanced false colour",
    "nasa9.jpg": "Jupiter, JunoCam frame with enhanced false colour",
    "sky6.jpg": "posterised duotone edit",
    "sky8.jpg": "composite: painted clouds and sky around a peak",
    "valley7.jpg": "hue-shifted to look alien (green sky, pink ground)",
    "valley9.jpg": "extreme HDR tone mapping (haloes, painted look)",
    "water5.jpg": "extreme HDR tone mapping (haloes, painted look)",
    "water6.jpg": "hue-shifted to look alien (purple sky and water)",
    "water9.jpg": "extreme HDR tone mapping (haloes, painted look)",
}

ENLIGHTENMENT_PHOTOS = _names("", ".edj", """
    Bamboo Foggy-Trees God-Rays Green-Maple Lichen-Branches Mountain Peaks Red-Maple Sea-of-Lanterns Snow-Trees
    Spruce-Needles Sunset-Clouds White-Flower Yellow-Flower""")  # Foggy-Trees, Lichen-Branches, Peaks: very dark
ENLIGHTENMENT_EXCLUDED = {
    "Dunes.edj": "flat vector illustration",
    "Flat-Fan.edj": "flat vector illustration",
    "Flat-Stone-Pattern.edj": "dark stone texture tile, 750x750",
    "Paper-Flower.edj": "paper texture and a drawn flower",
    "Squiggle.edj": "line drawing",
    "Squiggle-Dark.edj": "line drawing",
    "Squiggle-Light.edj": "line drawing",
    "Squiggle-Mid.edj": "line drawing",
    "Sunset-Hills.edj": "layered-hills illustration",
}

LXQT_PHOTOS = (
    "Butterfly-Kenneth-Wimer.jpg", "Valendas.png", "after-the-rain.jpg", "appleflower.png", "beam.png",
    "butterfly.png", "cloud.png", "drop.png", "flowers.png", "fog.jpg", "this-is-not-windows.jpg",
)
LXQT_EXCLUDED = {
    **dict.fromkeys(("kde-plasma.png", "triangles.png", "triangles-logo.png"), "low-poly illustration"),
    **dict.fromkeys(("lxqt-origami-green.png", "origami-bright-logo.png", "origami-dark.png", "origami-light.png"),
                    "origami-bird graphic"),
    **dict.fromkeys(("plasma-logo-bright.png", "plasma-logo-dark.png", "plasma_arch.png"),
                    "logo on a rendered backdrop"),
    **dict.fromkeys(("simple_blue_widescreen.png", "waves-logo.png", "waves-purple-logo.jpg"), "vector waves graphic"),
}

TUXPAINT_PHOTOS = _names("", ".jpg", """
    burnt_bark cliff corn_maze jellyfish lighthouse mossy_bark mossy_log mudstone ocean_splash ocean_waves
    redwoods_above rocks sheep spiders_web sun_behind_clouds sun_behind_leaves trees_above trees_at_dusk
    wool_mill_machine""")

PALAPELI_PHOTOS = _names("", ".jpg", """
    castle-maintenon cincinnati-bridge citrus-fruits european-honey-bee panther-chameleon-female""")

SOURCES: tuple[Source, ...] = (
    Source("plasma-workspace-wallpapers", "file", "usr/share/wallpapers/",
           tuple(f"{name}/contents/images/2560x1600.jpg" for name in PLASMA_PHOTOS)),
    Source("mate-backgrounds", "file", "usr/share/backgrounds/mate/nature/", _names("", ".jpg", """
        Aqua Blinds Dune FreshFlower Garden GreenMeadow LadyBird RainDrops Storm TwoWings Wood YellowFlower""")),
    Source("gcompris-qt-data", "rcc", "usr/share/gcompris-qt/rcc/", GCOMPRIS_PHOTOS, GCOMPRIS_EXCLUDED,
           prefix="gcompris", inner="gcompris/src/activities/"),
    Source("enlightenment-data", "edj", "usr/share/enlightenment/data/backgrounds/", ENLIGHTENMENT_PHOTOS,
           ENLIGHTENMENT_EXCLUDED, prefix="enlightenment"),
    Source("endless-sky-data", "file", "usr/share/games/endless-sky/images/land/", ENDLESS_SKY_PHOTOS,
           ENDLESS_SKY_EXCLUDED, prefix="endless-sky"),
    Source("lxqt-themes", "file", "usr/share/lxqt/wallpapers/", LXQT_PHOTOS, LXQT_EXCLUDED, prefix="lxqt"),
    Source("tuxpaint-data", "file", "usr/share/tuxpaint/templates/", TUXPAINT_PHOTOS, prefix="tuxpaint"),
    Source("digikam-data", "file", "usr/share/digikam/about/images/", ("body-background.jpg",),
           {"top-left-digikam.png": "logo"}, prefix="digikam"),
    Source("palapeli-data", "file", "usr/share/palapeli/collection/", PALAPELI_PHOTOS, prefix="palapeli"),
)


def photos_root() -> Path:
    """The cache folder of the training photos: debs/ (the packages) and prepared/ (the PNGs)."""
    return cache_dir() / "train-photos"


def fetch_deb(package: str) -> Path:
    """The package's .deb in the cache, downloaded with `apt-get download` the first time."""
    debs = photos_root() / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    found = sorted(debs.glob(f"{package}_*.deb"))
    if not found:
        print(f"hiercodec: downloading Debian package {package} ...", file=sys.stderr)
        run(["apt-get", "download", package], debs, f"cd {debs} && apt-get download {package}", f"Debian's {package}")
        found = sorted(debs.glob(f"{package}_*.deb"))
    if len(found) != 1:
        names = ", ".join(p.name for p in found)
        what = f"{len(found)} versions are there ({names})" if found else "no .deb appeared"
        raise HiercodecError(f"need exactly one {package}_*.deb in {debs}, but {what}; keep one and run again")
    return found[0]


def read_source(source: Source, deb: Path, names: tuple[str, ...] | None = None) -> dict[str, bytes]:
    """The encoded photos `names` (default: all kept) of `source` from its .deb, by name.

    The bytes are an image file (JPEG, PNG, WebP) or, for "edj", the Eet image entry of the
    archive's largest image. Every name must be found: a missing one raises a HiercodecError.
    """
    names = source.keep if names is None else names
    where = f"{source.package} ({deb.name})"
    if source.kind == "file":
        members = deb_members(deb, {source.folder + n for n in names})
        _require(names, {n for n in names if source.folder + n in members}, where)
        return {n: members[source.folder + n] for n in names}
    if source.kind == "rcc":
        containers = sorted({n.split("/", 1)[0] for n in names})
        members = deb_members(deb, {f"{source.folder}{c}.rcc" for c in containers})
        _require(tuple(f"{c}.rcc" for c in containers), {p.rsplit("/", 1)[-1] for p in members}, where)
        files: dict[str, bytes] = {}
        for c in containers:
            inside = read_rcc(members[f"{source.folder}{c}.rcc"], f"{c}.rcc of {where}")
            files.update({p[len(source.inner):]: b for p, b in inside.items() if p.startswith(source.inner)})
        _require(names, set(files), where)
        return {n: files[n] for n in names}
    if source.kind == "edj":
        members = deb_members(deb, {source.folder + n for n in names})
        _require(names, {n for n in names if source.folder + n in members}, where)
        return {n: _largest_image(members[source.folder + n], f"{n} of {where}") for n in names}
    raise HiercodecError(f"unknown kind of photo source {source.kind!r} for {source.package}")


def _require(names: tuple[str, ...], found: set[str], where: str) -> None:
    missing = [n for n in names if n not in found]
    if missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise HiercodecError(f"{len(missing)} training photos missing from {where}: {shown}; "
                             "the package changed: review it and update SOURCES in hiercodec/train/data.py")


def _largest_image(archive: bytes, what: str) -> bytes:
    """The image entry of an Edje file with the most pixels (edje_cc stores one per screen size)."""
    images = {n: e for n, e in eet.read_eet(archive, what).items() if n.startswith("edje/images/")}
    if not images:
        raise HiercodecError(f"{what} has no images")
    sizes = {n: eet.image_size(e, f"{n} in {what}") for n, e in images.items()}
    best = max(sorted(images), key=lambda n: sizes[n][0] * sizes[n][1])  # sorted: ties go to one name everywhere
    return images[best]


def photo_size(source: Source, data: bytes, what: str = "photo") -> tuple[int, int]:
    """(width, height) of an encoded photo of `source`, from its header."""
    if source.kind == "edj":
        return eet.image_size(data, what)
    try:
        return Image.open(io.BytesIO(data)).size
    except (OSError, ValueError, SyntaxError) as exc:
        raise HiercodecError(f"{what} is not a readable image ({exc})") from None


def decode_photo(source: Source, data: bytes, what: str = "photo") -> np.ndarray:
    """An encoded photo of `source` as uint8 RGB (H, W, 3); transparency is refused."""
    try:
        if source.kind == "edj":
            pixels = eet.decode_image(data, what)
        else:
            image = Image.open(io.BytesIO(data))
            alpha = "A" in image.getbands() or "transparency" in image.info
            pixels = np.asarray(image.convert("RGBA" if alpha else "RGB"))
    except (OSError, ValueError, SyntaxError) as exc:
        raise HiercodecError(f"{what} does not decode ({exc})") from None
    if pixels.shape[2] == 4:
        if pixels[..., 3].min() < 255:  # a cut-out, not a photo
            raise HiercodecError(f"{what} has transparent pixels; it is not a photo")
        pixels = pixels[..., :3]
    if min(pixels.shape[:2]) < MIN_SIDE:
        raise HiercodecError(f"{what} is only {pixels.shape[1]}x{pixels.shape[0]}; the package changed")
    return np.ascontiguousarray(pixels)


def area_downsample(image: np.ndarray, factor: int) -> np.ndarray:
    """Mean over factor x factor blocks (edges cropped), rounded: exact and reproducible."""
    h, w = image.shape[0] // factor * factor, image.shape[1] // factor * factor
    blocks = image[:h, :w].reshape(h // factor, factor, w // factor, factor, -1).astype(np.float64)
    return np.rint(blocks.mean(axis=(1, 3))).clip(0, 255).astype(np.uint8)


def prepared_paths(source: Source, factors: tuple[int, ...] = DOWNSAMPLE_FACTORS) -> dict[str, list[Path]]:
    """The prepared PNGs of each kept photo of `source` (they may not exist yet), in `keep` order."""
    out_dir = photos_root() / "prepared"
    return {name: [out_dir / f"{source.stem(name)}-x{f}.png" for f in factors] for name in source.keep}


def prepare(factors: tuple[int, ...] = DOWNSAMPLE_FACTORS, sources: tuple[Source, ...] = SOURCES) -> list[Path]:
    """Downsampled RGB copies of every training photo, cached as PNG; returns their paths.

    The order is fixed (SOURCES, then each source's `keep`, then `factors`), so the set is the
    same on every machine. Only photos with a missing PNG are read, so a prepared set needs
    neither the network nor the .debs.
    """
    (photos_root() / "prepared").mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    for source in sources:
        targets = prepared_paths(source, factors)
        todo = tuple(n for n, ts in targets.items() if not all(t.exists() for t in ts))
        if todo:
            deb = fetch_deb(source.package)
            print(f"hiercodec: reading {len(todo)} photos from {deb.name} ...", file=sys.stderr)
            encoded = read_source(source, deb, todo)
            for name in tqdm(todo, desc=source.package, unit="photo", file=sys.stderr):
                image = decode_photo(source, encoded.pop(name), f"{name} of {source.package}")
                for f, target in zip(factors, targets[name]):
                    _save_png(area_downsample(image, f), target)
        for name in source.keep:
            paths += targets[name]
    return paths


def _save_png(image: np.ndarray, target: Path) -> None:
    """Write via a temporary name: an interrupted run leaves no half-written PNG that looks done."""
    part = target.with_name(f"{target.name}.{os.getpid()}.part")  # two runs at once must not share one
    Image.fromarray(image).save(part, format="PNG")
    os.replace(part, target)


def load_images(paths: list[Path]) -> list[np.ndarray]:
    return [np.asarray(Image.open(p).convert("RGB")) for p in paths]


def report(factors: tuple[int, ...] = DOWNSAMPLE_FACTORS, sources: tuple[Source, ...] = SOURCES) -> list[dict]:
    """Per package: source photos, training images and megapixels after downsampling (all factors).

    Prepares the set first (only what is missing); the numbers are read from the PNG headers.
    """
    prepare(factors, sources)
    rows = []
    for source in sources:
        files = [p for ps in prepared_paths(source, factors).values() for p in ps]
        pixels = sum(_pixels(p) for p in files)
        rows.append({"package": source.package, "photos": len(source.keep), "images": len(files),
                     "megapixels": pixels / 1e6})
    return rows


def _pixels(path: Path) -> int:
    with Image.open(path) as image:  # reads the header only
        return image.size[0] * image.size[1]


def format_report(rows: list[dict]) -> str:
    """The report as a text table with a total row."""
    total = {"package": "total", **{k: sum(r[k] for r in rows) for k in ("photos", "images", "megapixels")}}
    lines = [f"{'package':<28} {'photos':>6} {'images':>6} {'MP after downsampling':>21}"]
    for r in [*rows, total]:
        lines.append(f"{r['package']:<28} {r['photos']:>6} {r['images']:>6} {r['megapixels']:>21.1f}")
    return "\n".join(lines)


if __name__ == "__main__":
    print(format_report(report()))
