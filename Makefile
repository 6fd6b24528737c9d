# `make demo` builds the environment and super-resolves the bundled sample scene;
# `make test` builds the environment and runs ruff, mypy and pytest.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: venv test lint demo bench bench-scene bench-ldm bench-ldm-scene bench-fusion evaluate evaluate-ldm \
	evaluate-places evaluate-fusion evaluate-continuous evaluate-sharpening

SAMPLE := src/satsr/sample/s2_l1c_sample_256.tif

$(BIN)/satsr-installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# Pinned CPU build; without the pin pip pulls a multi-GB CUDA build.
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

venv: $(BIN)/satsr-installed

lint: venv
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests
	$(BIN)/mypy

# One pytest worker per core, each torch on one thread (on 2 cores: 43 s instead of 86 s one after another).
test: lint
	OMP_NUM_THREADS=1 $(BIN)/pytest -q -n auto

demo: venv
	mkdir -p demo_out
	$(BIN)/satsr upscale $(SAMPLE) demo_out/sample_x4.tif --quicklook demo_out/sample_x4.png --overwrite
	@echo "wrote demo_out/sample_x4.tif (4x, GeoTIFF) and demo_out/sample_x4.png (input | output)"

# Slow measurements (minutes each; not part of `make test`). Results are printed, not asserted.
bench: venv
	$(BIN)/python scripts/bench_upscale.py 2048
	$(BIN)/python scripts/bench_upscale.py 4096

# Full 10980 x 10980 scene: uninterrupted, killed half-way + resumed (pixel hashes), Dask with 2 workers.
# About 1 h 10 min on 2 cores; needs ~19 GB of free disk (one 17 GB output at a time).
bench-scene: venv
	cd scripts && ../$(BIN)/python bench_scene.py ../bench_out --side 10980

# s2-rgbn-x4-ldm: time per 512 x 512 output against the fast model, seams, uncertainty calibration.
bench-ldm: venv
	cd scripts && ../$(BIN)/python ldm_report.py ../eval_out/ldm_report --samples 8

evaluate: venv
	$(BIN)/satsr evaluate --model s2-rgbn-x4-fast --data ../shared/data/s2/dsen2_l1c --crop 128 \
		--max-images 1 --output eval_out/s2-x4 --title "S2 x4, held-apart scene T33UUB"

evaluate-ldm: venv
	$(BIN)/satsr evaluate --model s2-rgbn-x4-fast s2-rgbn-x4-ldm --data ../shared/data/s2/dsen2_l1c --crop 128 \
		--max-images 1 --samples 1 4 --lr-consistency both --output eval_out/ldm_main
	$(BIN)/satsr evaluate --model s2-rgbn-x4-ldm --data ../shared/data/s2/dsen2_l1c --crop 128 \
		--max-images 1 --steps 4 10 20 50 --no-fid --output eval_out/ldm_steps

# The held-apart places (T33UUB, 4 EuroSAT tiles of every class, 2 BigEarthNet patches), per kind of place:
# bicubic, the fast CNN, the diffusion model (1 sample and the mean of 4), and the nearest S2 date against
# the real Deimos-2 2.5 m image. About 15 min on 2 cores (FID's Inception network is most of it).
evaluate-places: venv
	$(BIN)/python scripts/eval_places.py eval_out/places --deimos --model s2-rgbn-x4-fast \
		s2-rgbn-x4-ldm:samples=1 s2-rgbn-x4-ldm:samples=4

# Whole-scene cost of the diffusion model against the fast CNN in one run (satsr upscale of T33UUB, 600 x 600).
bench-ldm-scene: venv
	$(BIN)/python scripts/bench_ldm_scene.py --repeats 2

# s2-rgbn-x4-fusion: LPIPS/PSNR against N on real revisits (the Deimos sample, eo-learn's dates by Wald's
# protocol) with ablations and baselines (the model card's tables), then on simulated revisits of T33UUB
# with harness reports (scripts/eval_fusion.py).
evaluate-fusion: venv
	$(BIN)/python scripts/eval_fusion_real.py --seeds 6
	$(BIN)/python scripts/eval_fusion.py eval_out/fusion --pairs 8

# Fusion time against N, as a ratio to one image of the same model in the same run.
bench-fusion: venv
	$(BIN)/python scripts/bench_fusion.py --threads 1

# Continuous-scale SR on aerial test pictures at x2 ... x10 (bicubic, the L1 regression baseline, the same
# network under E2DiffSR's stage-1 losses = Model-I-Retrained, E2DiffSR): PSNR/LPIPS/FID per scale and the
# time per 512 x 512 x4 output against the regressions and the ldm model.
evaluate-continuous: venv
	$(BIN)/python scripts/eval_continuous.py eval_out/continuous --images 12 \
		--model regression=training_seeds/rgb-continuous-regression \
		model-i-retrained=training_seeds/rgb-continuous-regression-gan e2diffsr=rgb-continuous

# The 20 m bands sharpened x2 by the 10 m bands, DSen2's protocol, on the held-apart places (T33UUB, two
# BigEarthNet patches): bicubic, high-pass injection, the guided network seed (training_seeds/) and s2-10band
# at --scale 1; then s2-10band's x4 of all ten bands, Wald's protocol two octaves down.
evaluate-sharpening: venv
	$(BIN)/python scripts/eval_sharpening.py eval_out/sharpening --model training_seeds/s2-20m-guided-eurosat \
		--ten-band s2-10band
	$(BIN)/python scripts/eval_sharpening_kinds.py
	$(BIN)/python scripts/eval_ten_band.py eval_out/ten_band
