"""The server-drawn chart (web/chart.py): valid SVG, lines where the numbers say, axes
with whole numbers, and a note when there is nothing to draw."""
import xml.etree.ElementTree as ET

from hypothesis import given
from hypothesis import strategies as st

from shop.campaign_stats import Point
from web import chart

NS = {"svg": "http://www.w3.org/2000/svg"}


def _lines(svg: str) -> dict:
    root = ET.fromstring(svg)
    return {line.get("data-series"): [tuple(map(float, xy.split(","))) for xy in line.get("points").split()]
            for line in root.findall("svg:polyline", NS)}


def test_lines_run_from_the_start_to_the_latest_counts():
    points = [Point(1000.0, 0, 0), Point(1060.0, 6, 2), Point(1120.0, 8, 8)]
    lines = _lines(chart.svg(points))
    bottom, top = chart.TOP + (chart.HEIGHT - chart.TOP - chart.BOTTOM), chart.TOP
    assert lines["delivered"][0] == (chart.LEFT, bottom) and lines["read"][0] == (chart.LEFT, bottom)
    assert lines["delivered"][-1] == (chart.WIDTH - chart.RIGHT, top)  # 8 of an axis up to 8
    assert lines["read"][1][1] > lines["delivered"][1][1]  # fewer read than delivered: lower
    svg = chart.svg(points)
    assert "delivered 8" in svg and "read 8" in svg and "+2 min" in svg


def test_nothing_to_draw():
    svg = chart.svg([])
    assert "Nothing delivered yet" in svg and _lines(svg) == {}


@given(st.integers(min_value=0, max_value=10**7))
def test_the_axis_top_is_at_least_the_value_with_whole_steps(value):
    top = chart._nice_max(value)
    assert top >= value and top % 4 == 0 and (value <= 4 or top < 10 * max(value, 1))


@given(st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 10**6)), min_size=2, max_size=60))
def test_any_series_is_valid_svg_inside_the_frame(counts):
    points, d, r = [], 0, 0
    for i, (more_d, more_r) in enumerate(counts):
        d += more_d
        r = min(d, r + more_r)
        points.append(Point(1000.0 + 60 * i, d, r))
    for name, coords in _lines(chart.svg(points)).items():
        assert len(coords) == len(points), name
        assert all(chart.LEFT <= x <= chart.WIDTH - chart.RIGHT + 1e-6 and chart.TOP - 1e-6 <= y <= chart.HEIGHT for x, y in coords)
