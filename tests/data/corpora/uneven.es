Uno.
Dos.
