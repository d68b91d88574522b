"""vtframework's built-in plugins, one package each, loaded like any third party's."""
