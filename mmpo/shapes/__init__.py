"""The shapes world: seeded synthetic scenes with exact ground truth."""

from mmpo.shapes.world import COLORS, SHAPES, Scene, ShapeObject, caption, make_scene, render

__all__ = ["COLORS", "SHAPES", "Scene", "ShapeObject", "caption", "make_scene", "render"]
