"""SeqIO registrations of the project's tasks and mixtures (imported for their side effects).

  demo          project-generated bilingual demo datasets (`make demo`)
  korani        Source 1: the KORANI release under XLT_KORANI_DIR
  korean        Source 2: public raw Korean data + the team's Korean templates
  p3            Source 3: English HF datasets + promptsource templates
  crosslingual  held-out eval tasks on the template language / style / answer axes
  insta         INSTA: each dataset's eval mixture, and the saved task selections
"""
from tasks import demo, korani, korean, p3, crosslingual  # noqa: F401
from tasks import korean_benchmarks  # noqa: F401  KMMLU and KoBEST (rank classification)
from tasks import insta  # noqa: F401  last: it reads what the others registered
