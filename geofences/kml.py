"""KML placemarks as GeoJSON Feature dicts, parsed here rather than by GDAL.

The parser is ``defusedxml``: a document type declaration, an entity or an external reference is refused, not
resolved, so a KML file can neither read local files nor reach the network nor expand into gigabytes. Network
links are not followed. Placemarks anywhere in the document (folders included) become features: ``name``,
``description``, ``ExtendedData`` values (typed by their ``Schema`` where one says so), and the geometry:
``Polygon``, ``Point``, or a ``MultiGeometry`` of polygons. Anything else is passed on as it is named
(``LineString``…) so the fence rules can refuse it with their usual message.
"""

from __future__ import annotations

from typing import Any
from xml.etree.ElementTree import Element

import defusedxml.ElementTree as SafeTree
from defusedxml import DefusedXmlException

from geofences.errors import FenceError

__all__ = ["kml_to_features"]

_TYPES = {"int": int, "uint": int, "short": int, "ushort": int, "float": float, "double": float, "bool": bool}


def kml_to_features(data: bytes) -> list[dict[str, Any]]:
    """
    >>> kml = b'''<kml xmlns="http://www.opengis.net/kml/2.2"><Document><Placemark><name>Kiosk</name>
    ...   <Point><coordinates>24.94,60.17</coordinates></Point></Placemark></Document></kml>'''
    >>> kml_to_features(kml)[0]["geometry"]
    {'type': 'Point', 'coordinates': [24.94, 60.17]}
    """
    try:
        root = SafeTree.fromstring(data, forbid_dtd=True)
    except DefusedXmlException as exc:
        raise FenceError("unsafe_file", f"the KML file uses a forbidden XML feature ({exc})", "file") from None
    except SafeTree.ParseError as exc:
        raise FenceError("unreadable_file", f"the KML file is not well-formed XML ({exc})", "file") from None
    if _local(root.tag) != "kml":
        raise FenceError("unreadable_file", "the file is not KML: its root element is not <kml>", "file")
    types = _schema_types(root)
    return [_placemark(p, types) for p in root.iter() if _local(p.tag) == "Placemark"]


def _local(tag: Any) -> str:
    return str(tag).rsplit("}", 1)[-1]


def _child(element: Element, name: str) -> Element | None:
    return next((c for c in element if _local(c.tag) == name), None)


def _children(element: Element, name: str) -> list[Element]:
    return [c for c in element if _local(c.tag) == name]


def _schema_types(root: Element) -> dict[str, type]:
    types: dict[str, type] = {}
    for field in root.iter():
        if _local(field.tag) == "SimpleField" and (kind := _TYPES.get(str(field.get("type", "")).lower())):
            types[str(field.get("name", ""))] = kind
    return types


def _typed(name: str, text: str, types: dict[str, type]) -> Any:
    kind = types.get(name)
    try:
        if kind is bool:
            return text.strip().lower() in ("1", "true")
        if kind is not None:
            return kind(text.strip())
    except ValueError:
        pass
    return text


def _placemark(placemark: Element, types: dict[str, type]) -> dict[str, Any]:
    properties: dict[str, Any] = {}
    for name in ("name", "description"):
        node = _child(placemark, name)
        if node is not None and node.text is not None:
            properties[name] = node.text.strip()
    extended = _child(placemark, "ExtendedData")
    if extended is not None:
        for item in extended.iter():
            tag = _local(item.tag)
            if tag == "SimpleData" and item.get("name"):
                properties[str(item.get("name"))] = _typed(str(item.get("name")), item.text or "", types)
            elif tag == "Data" and item.get("name"):
                value = _child(item, "value")
                properties[str(item.get("name"))] = _typed(
                    str(item.get("name")), value.text or "" if value is not None else "", types
                )
    geometry = next((_geometry(c) for c in placemark if _local(c.tag) in _GEOMETRIES), None)
    return {"type": "Feature", "properties": properties, "geometry": geometry}


def _coordinates(element: Element | None) -> list[list[float]]:
    node = None if element is None else next((c for c in element.iter() if _local(c.tag) == "coordinates"), None)
    if node is None or not node.text:
        return []
    positions = []
    for token in node.text.split():
        try:
            positions.append([float(v) for v in token.split(",")[:2]])
        except ValueError:
            raise FenceError("bad_coordinates", f"KML coordinates {token[:40]!r} are not numbers", "file") from None
    return positions


def _polygon_rings(polygon: Element) -> list[list[list[float]]]:
    outer = _child(polygon, "outerBoundaryIs")
    return [_coordinates(outer), *(_coordinates(inner) for inner in _children(polygon, "innerBoundaryIs"))]


def _geometry(element: Element) -> dict[str, Any]:
    kind = _local(element.tag)
    if kind == "Point":
        position = _coordinates(element)
        return {"type": "Point", "coordinates": position[0] if position else []}
    if kind == "Polygon":
        return {"type": "Polygon", "coordinates": _polygon_rings(element)}
    if kind == "MultiGeometry":
        parts = [c for c in element if _local(c.tag) in _GEOMETRIES]
        if parts and all(_local(p.tag) == "Polygon" for p in parts):
            return {"type": "MultiPolygon", "coordinates": [_polygon_rings(p) for p in parts]}
        if len(parts) == 1:
            return _geometry(parts[0])
        return {"type": "GeometryCollection", "coordinates": []}
    return {"type": kind, "coordinates": _coordinates(element)}


_GEOMETRIES = {"Point", "Polygon", "MultiGeometry", "LineString", "LinearRing", "Model", "Track"}
