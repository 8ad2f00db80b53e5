"""The FastAPI + SQLAlchemy tutorial as written, reading userbase's `users` table.

Everything is the tutorial's recipe: `create_engine` with the default pool, a plain
`sessionmaker`, `get_db` yielding a session and closing it, `def` routes returning ORM objects
through a `response_model`. Two apps, two ways the tutorial's list is written:

- `app`: `db.query(User).offset(skip).limit(limit).all()` (the docs' `crud.get_users`);
- `app_all`: `db.query(User).all()`, every row on each request.
"""

import os
from collections.abc import Iterator
from datetime import datetime

from fastapi import Depends, FastAPI, HTTPException
from pydantic import BaseModel, ConfigDict
from sqlalchemy import Boolean, Column, DateTime, Integer, String, create_engine
from sqlalchemy.orm import Session, declarative_base, sessionmaker

engine = create_engine(os.environ["DATABASE_URL"])
SessionLocal = sessionmaker(autocommit=False, autoflush=False, bind=engine)
Base = declarative_base()


class User(Base):
    __tablename__ = "users"

    id = Column(Integer, primary_key=True, index=True)
    username = Column(String, unique=True, index=True)
    email = Column(String, unique=True, index=True)
    password_hash = Column(String)
    display_name = Column(String)
    is_active = Column(Boolean, default=True)
    created_at = Column(DateTime(timezone=True))


class UserOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    username: str
    display_name: str | None
    created_at: datetime


def get_db() -> Iterator[Session]:
    db = SessionLocal()
    try:
        yield db
    finally:
        db.close()


app = FastAPI()
app_all = FastAPI()


@app.get("/users/", response_model=list[UserOut])
def read_users(skip: int = 0, limit: int = 100, db: Session = Depends(get_db)) -> list[User]:
    return db.query(User).offset(skip).limit(limit).all()


@app_all.get("/users/", response_model=list[UserOut])
def read_all_users(db: Session = Depends(get_db)) -> list[User]:
    return db.query(User).all()


@app.get("/users/{user_id}", response_model=UserOut)
@app_all.get("/users/{user_id}", response_model=UserOut)
def read_user(user_id: int, db: Session = Depends(get_db)) -> User:
    db_user = db.query(User).filter(User.id == user_id).first()
    if db_user is None:
        raise HTTPException(status_code=404, detail="User not found")
    return db_user
