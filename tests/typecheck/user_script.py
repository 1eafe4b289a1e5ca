import softmaxkit
