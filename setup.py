"""beam-analytics: one distribution for every job, shipped to Dataflow workers via --setup_file.

The Beam pin lives here once (BEAM_REQUIREMENT); the container images, templates and the
Makefile install this package, so workers and the launcher always run the same SDK.
"""
import setuptools

BEAM_REQUIREMENT = 'apache-beam[gcp]==2.77.0'
# Light, pure-Python, and what the bundled runs use offline: installed with every job.
REQUIREMENTS = [
    BEAM_REQUIREMENT,
    'vaderSentiment==3.3.2',  # tweet_sentiment's offline model (lexicon inside the package)
    # face_dataset: Haar cascades (4.x ships them; 5.0 does not), Pillow, the Vision API
    # discovery client, requests for URL lists. Not an extra: Dataflow installs the staged
    # --setup_file package without extras, and the detectors load on the workers.
    'opencv-python-headless>=4.8,<5',
    'Pillow>=10',
    'google-api-python-client>=2.100',
    'requests>=2.28',
]

EXTRAS = {
    # Heavy stacks are opt-in so a job that does not need them never imports them.
    'tf': ['tensorflow==2.21.0', 'tensorflow-hub==0.16.1', 'setuptools<81'],
    'dev': ['pytest>=8', 'duckdb>=1.1', 'ruff>=0.6'],
    # python -m pipelines.report: DuckDB over the NDJSON tables, matplotlib (Agg) charts.
    'report': ['duckdb>=1.1', 'matplotlib>=3.8'],
}

setuptools.setup(
    name='beam-analytics',
    version='0.1.0',
    description='Apache Beam pipelines for Google Cloud event streams and image sets.',
    python_requires='>=3.11,<3.12',
    packages=setuptools.find_packages(include=['pipelines*', 'transforms*', 'schemas*', 'models*']),
    package_data={
        'schemas': ['*.json', '*/*.json'],
        'pipelines': ['samples/*/*', 'samples/*/*/*'],  # face_dataset: <label>/<file>
    },
    install_requires=REQUIREMENTS,
    extras_require=EXTRAS,
)
