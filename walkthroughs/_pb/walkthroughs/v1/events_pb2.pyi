import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Channel(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CHANNEL_UNSPECIFIED: _ClassVar[Channel]
    EMAIL: _ClassVar[Channel]
    SMS: _ClassVar[Channel]
    FACEBOOK_AD: _ClassVar[Channel]
    PUSH: _ClassVar[Channel]
CHANNEL_UNSPECIFIED: Channel
EMAIL: Channel
SMS: Channel
FACEBOOK_AD: Channel
PUSH: Channel

class ZenreachMessage(_message.Message):
    __slots__ = ("message_id", "business_id", "customer_id", "channel", "sent_at", "campaign_id")
    MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    BUSINESS_ID_FIELD_NUMBER: _ClassVar[int]
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    SENT_AT_FIELD_NUMBER: _ClassVar[int]
    CAMPAIGN_ID_FIELD_NUMBER: _ClassVar[int]
    message_id: str
    business_id: str
    customer_id: str
    channel: Channel
    sent_at: _timestamp_pb2.Timestamp
    campaign_id: str
    def __init__(self, message_id: _Optional[str] = ..., business_id: _Optional[str] = ..., customer_id: _Optional[str] = ..., channel: _Optional[_Union[Channel, str]] = ..., sent_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., campaign_id: _Optional[str] = ...) -> None: ...

class WalkIn(_message.Message):
    __slots__ = ("walkin_id", "business_id", "customer_id", "location_id", "started_at", "ended_at", "timezone")
    WALKIN_ID_FIELD_NUMBER: _ClassVar[int]
    BUSINESS_ID_FIELD_NUMBER: _ClassVar[int]
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    LOCATION_ID_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    ENDED_AT_FIELD_NUMBER: _ClassVar[int]
    TIMEZONE_FIELD_NUMBER: _ClassVar[int]
    walkin_id: str
    business_id: str
    customer_id: str
    location_id: str
    started_at: _timestamp_pb2.Timestamp
    ended_at: _timestamp_pb2.Timestamp
    timezone: str
    def __init__(self, walkin_id: _Optional[str] = ..., business_id: _Optional[str] = ..., customer_id: _Optional[str] = ..., location_id: _Optional[str] = ..., started_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., ended_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., timezone: _Optional[str] = ...) -> None: ...

class Walkthrough(_message.Message):
    __slots__ = ("walkin_id", "business_id", "customer_id", "location_id", "walkin_at", "message_id", "channel", "campaign_id", "message_sent_at", "local_date")
    WALKIN_ID_FIELD_NUMBER: _ClassVar[int]
    BUSINESS_ID_FIELD_NUMBER: _ClassVar[int]
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    LOCATION_ID_FIELD_NUMBER: _ClassVar[int]
    WALKIN_AT_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    CAMPAIGN_ID_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_SENT_AT_FIELD_NUMBER: _ClassVar[int]
    LOCAL_DATE_FIELD_NUMBER: _ClassVar[int]
    walkin_id: str
    business_id: str
    customer_id: str
    location_id: str
    walkin_at: _timestamp_pb2.Timestamp
    message_id: str
    channel: Channel
    campaign_id: str
    message_sent_at: _timestamp_pb2.Timestamp
    local_date: str
    def __init__(self, walkin_id: _Optional[str] = ..., business_id: _Optional[str] = ..., customer_id: _Optional[str] = ..., location_id: _Optional[str] = ..., walkin_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., message_id: _Optional[str] = ..., channel: _Optional[_Union[Channel, str]] = ..., campaign_id: _Optional[str] = ..., message_sent_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., local_date: _Optional[str] = ...) -> None: ...
