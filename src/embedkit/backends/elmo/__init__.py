"""ELMo (AllenNLP's published biLM files) in torch + h5py: ``elmo:/path/to/folder``.

* :mod:`.files`    reads and checks ``options.json`` + ``weights.hdf5`` (and writes random
  ones in the same layout, for tests and examples);
* :mod:`.chars`    tokens and ELMo's character ids;
* :mod:`.model`    the biLM (char CNN, highway, projection, biLSTM) in torch;
* :mod:`.embedder` :class:`~embedkit.backends.elmo.embedder.ElmoEmbedder`, the backend.

Nothing heavy is imported here: torch and h5py load with the embedder
(``pip install 'embedkit[elmo]'``).
"""
