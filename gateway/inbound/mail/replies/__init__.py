"""A customer's reply read line by line: what they wrote, wherever it sits, apart from the
mail they quote (``lines``), the quote headers of the common mail programs (``headers``), our
own sent text to recognise (``sent``), and the text that goes on the case (``render``)."""
