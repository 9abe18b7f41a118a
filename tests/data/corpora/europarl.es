Reanudación del período de sesiones
Declaro reanudado el período de sesiones.

Gracias, señora Presidenta.
