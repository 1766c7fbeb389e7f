"""Image reliance is ~0 for a model trained without the image and grows when it is used."""

import torch

from mmpo.data.schema import PreferenceExample
from mmpo.eval.reliance import image_reliance
from mmpo.model import load_model, load_processor
from mmpo.shapes.world import caption, make_scene, render


def test_reliance_is_zero_when_image_does_not_matter(tiny_models):
    model = load_model(tiny_models["llava"], dtype=torch.float32).eval()
    processor = load_processor(tiny_models["llava"])
    scenes = [make_scene(i) for i in range(4)]
    rows = [PreferenceExample(str(i), [render(s)], "Describe.", "-", "-") for i, s in enumerate(scenes)]
    answers = [caption(s.objects) for s in scenes]
    nonzero = image_reliance(model, processor, rows, answers)
    assert nonzero != 0.0
    # Cut the projector: image features become zero whatever the image, so reliance is 0.
    with torch.no_grad():
        for p in model.model.multi_modal_projector.parameters():
            p.zero_()
    assert abs(image_reliance(model, processor, rows, answers)) < 1e-5
