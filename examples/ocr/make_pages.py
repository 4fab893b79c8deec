#!/usr/bin/env python3
"""Generates a labelled OCR test set: pages of printed lines with their
true text and boxes, the same for the same seed.

Fonts come from Debian's fonts-dejavu-core only, so the same seed draws
the same pages on every machine that has it. Some lines are printed upside down, so the angle classifier has
work to do. Needs Pillow.

    python3 examples/ocr/make_pages.py --out target/ocr-pages --pages 8 --seed 1

writes OUT/page-000.png ... and OUT/labels.json:
    [{"file": "page-000.png", "lines": [{"text": "...", "box": [[x, y] x 4],
      "upside_down": false}, ...]}, ...]
with each box's corners clockwise from the top-left, in pixels.
"""

import argparse
import glob
import json
import pathlib
import random

from PIL import Image, ImageDraw, ImageFont

WORDS = """
the of and to in is was for on are with as his they be at one have this from
or had by hot but some what there we can out other were all your when up use
word how said an each she which do their time if will way about many then them
would write like so these her long make thing see him two has look more day
could go come did my sound no most number who over know water than call first
people may down side been now find any new work part take get place made live
where after back little only round man year came show every good me give our
under name very through just form much great think say help low line before
turn cause same mean differ move right boy old too does tell sentence set three
want air well also play small end put home read hand port large spell add even
land here must big high such follow act why ask men change went light kind off
need house picture try again animal point mother world near build self earth
father head stand own page should country found answer school grow study still
learn plant cover food sun four thought let keep eye never last door between
city tree cross since hard start might story saw far sea draw left late run
invoice total amount due date order receipt payment account balance ticket
""".split()

FONT_PATTERNS = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/dejavu/DejaVuSerif.ttf",
    "/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf",
    "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf",
]


def fonts():
    found = [path for pattern in FONT_PATTERNS for path in sorted(glob.glob(pattern))]
    if not found:
        raise SystemExit("no fonts: apt-get install fonts-dejavu-core")
    return found


def line_text(rng: random.Random) -> str:
    words = [rng.choice(WORDS) for _ in range(rng.randint(2, 6))]
    if rng.random() < 0.5:
        words.insert(rng.randrange(len(words) + 1), str(rng.randint(1, 99999)))
    if rng.random() < 0.3:
        words[0] = words[0].capitalize()
    text = " ".join(words)
    if rng.random() < 0.3:
        text += rng.choice([".", ",", ":", "!", "?"])
    return text


def page(rng: random.Random, font_files, upside_down_share: float, max_height: int):
    width = rng.choice([640, 800, 960])
    lines = []
    y = rng.randint(20, 50)
    canvas = Image.new("RGB", (width, max_height + 200), "white")
    while True:
        size = rng.randint(18, 34)
        font = ImageFont.truetype(rng.choice(font_files), size)
        text = line_text(rng)
        left, top, right, bottom = font.getbbox(text)
        w, h = right - left, bottom - top
        if w > width - 40:
            continue
        if y + h + 20 > max_height:
            break
        x = rng.randint(20, width - 20 - w)
        strip = Image.new("RGB", (w + 8, h + 8), "white")
        ImageDraw.Draw(strip).text((4 - left, 4 - top), text, font=font, fill=(rng.randint(0, 60),) * 3)
        flipped = rng.random() < upside_down_share
        if flipped:
            strip = strip.rotate(180)
        canvas.paste(strip, (x - 4, y - 4))
        box = [[x, y], [x + w, y], [x + w, y + h], [x, y + h]]
        lines.append({"text": text, "box": box, "upside_down": flipped})
        y += h + rng.randint(12, 30)
    return canvas.crop((0, 0, width, y + 20)), lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--pages", type=int, default=8)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--upside-down", type=float, default=0.15)
    parser.add_argument("--max-height", type=int, default=1200, help="page height at most")
    args = parser.parse_args()
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(args.seed)
    font_files = fonts()
    labels = []
    for index in range(args.pages):
        image, lines = page(rng, font_files, args.upside_down, args.max_height)
        name = f"page-{index:03d}.png"
        image.save(out / name)
        labels.append({"file": name, "lines": lines})
    (out / "labels.json").write_text(json.dumps(labels, indent=1, ensure_ascii=False))
    total = sum(len(p["lines"]) for p in labels)
    print(f"{out}: {args.pages} pages, {total} lines")


if __name__ == "__main__":
    main()
