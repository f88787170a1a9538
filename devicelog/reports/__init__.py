"""Reports: the due list and the device history as text, csv, json, pdf, ics and FHIR.

Heavy libraries (fpdf, fhir.resources, icalendar) are imported inside the functions
that use them, so importing a report module stays cheap.
"""
