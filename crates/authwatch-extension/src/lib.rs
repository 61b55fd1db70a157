authwatch_core::components!(Extension: health_check, status_page);
